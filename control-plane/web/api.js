// The API client: the session (tokens in sessionStorage), quiet refresh shared with the
// session's other tabs, errors as ApiError, downloads, and server-sent event streams read with
// fetch (EventSource cannot send the Authorization header).
import { sleep } from './dom.js';

const KEY = 'voxfleet.session';
const ENDED_CODES = new Set(['refresh_reused', 'invalid_refresh', 'session_expired']);
export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || (status ? `http_${status}` : 'network');
  }
}

const hooks = {
  network: () => {},
  signedOut: () => {},
  mfaRequired: () => {},
};

export function setHooks(h) {
  Object.assign(hooks, h);
}

// ---------------------------------------------------------------------------------------------
// Session

let session = load();
let refreshTimer = null;
let refreshing = null;
let lastActivity = Date.now();
let lastRefresh = Date.now();

function load() {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function getSession() {
  return session;
}

/** Keeps a pair from sign-in (generation 0) or a refresh (extra.gen: the session's rotations). */
export function storeSession(issued, extra = {}) {
  const prev = session || {};
  session = {
    access_token: issued.access_token,
    access_expires_at: issued.access_expires_at,
    refresh_token: issued.refresh_token,
    session_expires_at: issued.session_expires_at,
    session_id: issued.session_id,
    user_id: issued.user_id,
    mfa_enrollment_required: Boolean(issued.mfa_enrollment_required ?? prev.mfa_enrollment_required),
    gen: 0,
    ...extra,
  };
  lastRefresh = Date.now();
  persist();
  scheduleRefresh();
  joinTabs();
}

export function setMfaPending(pending) {
  if (!session) return;
  session.mfa_enrollment_required = Boolean(pending);
  persist();
}

function persist() {
  try {
    if (session) sessionStorage.setItem(KEY, JSON.stringify(session));
    else sessionStorage.removeItem(KEY);
  } catch {
    // storage full or blocked: the session lives in memory for this page
  }
}

/** Forgets the session here; with everywhere, its other tabs (after a sign-out) as well. */
export function clearSession({ everywhere = false } = {}) {
  if (everywhere && session) post('signout');
  session = null;
  clearTimeout(refreshTimer);
  persist();
  joinTabs();
}

/** Ends the session locally and tells the app (which shows the sign-in screen). */
function endSession(message, kind = 'error') {
  if (!session) return;
  clearSession();
  hooks.signedOut(message, kind);
}

function expiresIn(s) {
  const t = Date.parse(s?.access_expires_at || '');
  return Number.isNaN(t) ? 0 : t - Date.now();
}

// Activity keeps the session alive: without it the access token is left to lapse, and the
// next call refreshes (or finds the session ended past the idle timeout), so the server's
// idle timeout still means something while a tab sits open.
for (const ev of ['pointerdown', 'keydown']) {
  window.addEventListener(ev, () => { lastActivity = Date.now(); }, { passive: true, capture: true });
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!session) return;
  const left = expiresIn(session);
  const lifetime = Math.max(left, 1000);
  const lead = Math.min(60000, Math.max(5000, lifetime * 0.2));
  refreshTimer = setTimeout(() => {
    if (!session) return;
    if (lastActivity > lastRefresh) refreshSession().catch(() => {});
  }, Math.max(1000, left - lead));
}

export function refreshSession() {
  if (!refreshing) refreshing = doRefresh().finally(() => { refreshing = null; });
  return refreshing;
}

async function doRefresh() {
  const s = session;
  if (!s) throw new ApiError(401, 'unauthorized', 'You are not signed in.');
  if (!LOCKS || !channel) return rotate(s, false);
  await bootGrace;
  return LOCKS.request(`voxfleet-refresh:${s.session_id}`, async () => {
    // Re-read what this tab holds: a sibling that had the lock first has already rotated the
    // token and handed over its pair, and sending the spent one would end the session.
    const now = session;
    if (!now) {
      const err = new ApiError(401, 'unauthorized', 'You are not signed in.');
      err.sessionEnded = true;
      throw err;
    }
    if (now.refresh_token !== s.refresh_token) return now;
    return rotate(now, true);
  });
}

/** Exchanges the refresh token of s for a new pair (coordinated: under the tabs' lock). */
async function rotate(s, coordinated) {
  let res;
  try {
    res = await fetch('/v1/auth/refresh', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ refresh_token: s.refresh_token }),
      cache: 'no-store',
    });
  } catch {
    hooks.network(true);
    throw new ApiError(0, 'network', 'The server could not be reached.');
  }
  hooks.network(false);
  if (res.ok) {
    const issued = await res.json();
    if (session && session.refresh_token === s.refresh_token) {
      storeSession(issued, { gen: gen(s) + 1 });
      await publish(coordinated);
    }
    return session;
  }
  const err = await errorFrom(res);
  if (res.status === 401 || ENDED_CODES.has(err.code)) {
    err.sessionEnded = true;
    endSession(endMessage(err));
  }
  throw err;
}

function endMessage(err) {
  switch (err.code) {
    case 'refresh_reused':
      return `Your session was ended for safety because its refresh token was used twice (${err.code}). Please sign in again.`;
    case 'session_expired':
      // the server says why: "the session ended (idle): sign in again"
      return `${err.message.charAt(0).toUpperCase()}${err.message.slice(1)} (${err.code}).`;
    case 'invalid_refresh':
      return `Your session is no longer valid (${err.code}). Please sign in again.`;
    default:
      return `Please sign in again (${err.code}: ${err.message}).`;
  }
}

async function ensureFresh() {
  if (session && expiresIn(session) < 10000) await refreshSession();
}

// ---------------------------------------------------------------------------------------------
// Tabs of one session
//
// "Duplicate tab" copies sessionStorage, so several tabs may hold one refresh token, and the
// server ends the whole session when a used one comes back (`refresh_reused`). The tabs of a
// session therefore refresh one at a time under a Web Lock, and the one that refreshed hands
// the new pair to the others on a BroadcastChannel named after the session before it lets go
// of the lock. `gen` counts the session's rotations, so a tab adopts only a newer pair.
// Without either API each tab refreshes on its own, as before.

const LOCKS = typeof navigator !== 'undefined' && navigator.locks && typeof navigator.locks.request === 'function'
  ? navigator.locks
  : null;
const HAS_CHANNEL = typeof BroadcastChannel === 'function';
const TAB = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
// How long a refresh waits for the other tabs to confirm they have the new pair: only a tab
// that is gone or frozen takes that long, and it is not waited for again until it speaks.
const ACK_MS = 1000;
// A tab restored with an older pair (reloaded after a discard, back from the back/forward
// cache) gets the newest one in answer to its hello: its first refresh waits for that.
const bootGrace = HAS_CHANNEL ? sleep(200) : Promise.resolve();

let channel = null;
let channelSid = null;
const peers = new Set();
let awaiting = null;

function gen(x) {
  return Number.isInteger(x?.gen) ? x.gen : 0;
}

function state() {
  return { gen: gen(session), pair: session };
}

/** Follows the current session's channel (leaving the previous one's). */
function joinTabs() {
  const sid = session?.session_id || null;
  if (!HAS_CHANNEL || sid === channelSid) return;
  if (channel) {
    post('bye');
    channel.close();
  }
  channel = null;
  channelSid = sid;
  peers.clear();
  if (awaiting) awaiting.done();
  if (!sid) return;
  try {
    channel = new BroadcastChannel(`voxfleet-session:${sid}`);
  } catch {
    return;
  }
  channel.onmessage = (e) => onTabMessage(e.data);
  post('hello', state());
}

function post(type, data = {}) {
  if (!channel) return;
  try {
    channel.postMessage({ ...data, type, tab: TAB });
  } catch {
    // a closed channel: nobody to tell
  }
}

function onTabMessage(m) {
  if (!m || typeof m !== 'object' || m.tab === TAB || !session) return;
  if (m.type === 'bye') {
    peers.delete(m.tab);
    settle(m.tab);
    return;
  }
  peers.add(m.tab);
  switch (m.type) {
    case 'hello':
      adopt(m);
      post('here', state());
      break;
    case 'here':
      adopt(m);
      break;
    case 'rotated':
      adopt(m);
      post('ack', { to: m.tab, gen: m.gen });
      break;
    case 'ack':
      if (m.to === TAB && awaiting && m.gen === awaiting.gen) settle(m.tab);
      break;
    case 'signout':
      endSession('You signed out in another tab.', 'info');
      break;
    default:
      break;
  }
}

/** Takes a sibling's pair when it is newer than this tab's. */
function adopt(m) {
  const p = m.pair;
  if (!p || !session || p.session_id !== session.session_id || !(gen(m) > gen(session))) return;
  storeSession(p, { gen: gen(m) });
}

/** Sends the new pair to the other tabs; with wait, resolves once each has confirmed it. */
function publish(wait) {
  const g = gen(session);
  post('rotated', { gen: g, pair: session });
  const left = new Set(peers);
  if (!wait || !left.size) return Promise.resolve();
  return new Promise((resolve) => {
    let timer = null;
    const done = () => {
      clearTimeout(timer);
      awaiting = null;
      for (const t of left) peers.delete(t);
      resolve();
    };
    awaiting = { gen: g, left, done };
    timer = setTimeout(done, ACK_MS);
  });
}

function settle(tab) {
  if (!awaiting) return;
  awaiting.left.delete(tab);
  if (!awaiting.left.size) awaiting.done();
}

joinTabs();
window.addEventListener('pagehide', () => post('bye'));
window.addEventListener('pageshow', (e) => {
  if (e.persisted) post('hello', state());
});

// ---------------------------------------------------------------------------------------------
// Requests

export async function errorFrom(res) {
  let code = `http_${res.status}`;
  let message = res.statusText || `HTTP ${res.status}`;
  try {
    const text = await res.text();
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      }
    } catch {
      if (text) message = text.slice(0, 300);
    }
  } catch {
    // body unreadable: keep the status line
  }
  return new ApiError(res.status, code, message);
}

export function withQuery(path, query) {
  if (!query) return path;
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    p.set(k, String(v));
  }
  const s = p.toString();
  return s ? `${path}${path.includes('?') ? '&' : '?'}${s}` : path;
}

/**
 * api('/v1/users', {method, body, query, signal, raw, auth}) → parsed JSON (null for 204),
 * or the Response with raw. Throws ApiError with the server's code and message.
 */
export async function api(path, opts = {}) {
  const { method = 'GET', body, query, signal, raw = false, auth = true } = opts;
  const url = withQuery(path, query);
  let retried = false;
  for (;;) {
    if (auth) await ensureFresh();
    const headers = { Accept: 'application/json' };
    if (auth && session) headers.Authorization = `Bearer ${session.access_token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal,
        cache: 'no-store',
      });
    } catch (e) {
      if (e && e.name === 'AbortError') throw e;
      hooks.network(true);
      throw new ApiError(0, 'network', 'The server could not be reached. Check the connection and try again.');
    }
    hooks.network(false);
    if (res.ok) {
      if (raw) return res;
      if (res.status === 204) return null;
      const text = await res.text();
      return text ? JSON.parse(text) : null;
    }
    const err = await errorFrom(res);
    if (auth && res.status === 401 && session) {
      if (!retried && (err.code === 'unauthorized' || err.code === 'session_expired')) {
        retried = true;
        await refreshSession();
        continue;
      }
      err.sessionEnded = true;
      endSession(endMessage(err));
    } else if (auth && err.code === 'user_disabled') {
      err.sessionEnded = true;
      endSession(`This account is disabled (${err.code}).`);
    } else if (auth && err.code === 'mfa_enrollment_required') {
      hooks.mfaRequired();
    }
    throw err;
  }
}

/** Downloads a file from an authenticated route through a Blob and an <a download>. */
export async function download(path, query, fallbackName) {
  const res = await api(path, { query, raw: true });
  const blob = await res.blob();
  const cd = res.headers.get('Content-Disposition') || '';
  const m = /filename="?([^";]+)"?/i.exec(cd);
  saveBlob(blob, m ? m[1] : fallbackName);
}

export function saveBlob(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.hidden = true;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------------------------------------------------------------------------------------------
// Server-sent events

/**
 * Reads an SSE stream with fetch. onEvent(name, data, id) gets each event (data parsed as
 * JSON when it is JSON); onState('open' | 'reconnecting' | 'closed' | 'done', error?) follows
 * the connection. With untilTerminal, the stream ends after a terminal `status` event (a
 * job's stream); otherwise it reconnects with backoff whenever it drops.
 */
export function openStream(path, { onEvent, onState = () => {}, untilTerminal = false } = {}) {
  const ctrl = new AbortController();
  let closed = false;
  const close = () => {
    closed = true;
    ctrl.abort();
  };
  (async () => {
    let delay = 1000;
    let authFailures = 0;
    while (!closed) {
      let terminal = false;
      try {
        await ensureFresh();
        if (!session) return;
        const res = await fetch(path, {
          headers: { Authorization: `Bearer ${session.access_token}`, Accept: 'text/event-stream' },
          signal: ctrl.signal,
          cache: 'no-store',
        });
        if (res.status === 401) {
          authFailures += 1;
          if (authFailures > 2) {
            onState('closed', await errorFrom(res));
            return;
          }
          await refreshSession();
          continue;
        }
        if (!res.ok) {
          const err = await errorFrom(res);
          if (res.status === 403 || res.status === 404) {
            onState('closed', err);
            return;
          }
          throw err;
        }
        authFailures = 0;
        hooks.network(false);
        onState('open');
        delay = 1000;
        terminal = await readSse(res.body, (name, data, id) => {
          let parsed = data;
          try {
            parsed = JSON.parse(data);
          } catch {
            // not JSON: passed as text
          }
          try {
            onEvent(name, parsed, id);
          } catch (e) {
            console.error(e);
          }
          return untilTerminal && name === 'status' && parsed && TERMINAL.has(parsed.status);
        });
      } catch (e) {
        if (closed || ctrl.signal.aborted) return;
        if (e && e.sessionEnded) return;
        // a fetch or read that failed (not an API answer): the server is out of reach
        if (!(e instanceof ApiError) || e.code === 'network') hooks.network(true);
      }
      if (closed || ctrl.signal.aborted) return;
      if (terminal) {
        onState('done');
        return;
      }
      onState('reconnecting');
      await sleep(delay + Math.random() * 400, ctrl.signal);
      delay = Math.min(delay * 2, 30000);
    }
  })();
  return { close };
}

/** Parses SSE frames; returns true when dispatch asked to stop (a terminal event). */
async function readSse(body, dispatch) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  let name = '';
  let data = [];
  let id = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return false;
      buf += value;
      for (;;) {
        const i = buf.search(/[\r\n]/);
        if (i < 0) break;
        // a CR at the end of the chunk may be the first half of CRLF: wait for more
        if (buf[i] === '\r' && i + 1 === buf.length) break;
        const line = buf.slice(0, i);
        buf = buf.slice(buf[i] === '\r' && buf[i + 1] === '\n' ? i + 2 : i + 1);
        if (line === '') {
          if (data.length) {
            const stop = dispatch(name || 'message', data.join('\n'), id);
            if (stop) {
              reader.cancel().catch(() => {});
              return true;
            }
          }
          name = '';
          data = [];
          continue;
        }
        if (line.startsWith(':')) continue;
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        let val = c < 0 ? '' : line.slice(c + 1);
        if (val.startsWith(' ')) val = val.slice(1);
        if (field === 'event') name = val;
        else if (field === 'data') data.push(val);
        else if (field === 'id') id = val;
      }
    }
  } finally {
    try {
      reader.releaseLock();
    } catch {
      // already released
    }
  }
}
