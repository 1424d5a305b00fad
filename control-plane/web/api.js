// The API client: the session (tokens in sessionStorage), quiet refresh, errors as ApiError,
// downloads, and server-sent event streams read with fetch (EventSource cannot send the
// Authorization header).
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
    ...extra,
  };
  lastRefresh = Date.now();
  persist();
  scheduleRefresh();
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

export function clearSession() {
  session = null;
  clearTimeout(refreshTimer);
  persist();
}

/** Ends the session locally and tells the app (which shows the sign-in screen). */
function endSession(message) {
  if (!session) return;
  clearSession();
  hooks.signedOut(message);
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
    if (session && session.refresh_token === s.refresh_token) storeSession(issued);
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
      return `Your session has ended (${err.code}): ${err.message}. Please sign in again.`;
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
