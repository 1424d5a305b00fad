// The dashboard shell: sign-in, navigation by role, the History API router, the live event
// stream, and the network banner. Sections render themselves (admin.js, ops.js, account.js).
import { h, replace, setText } from './dom.js';
import {
  api, ApiError, clearSession, getSession, openStream, setHooks, setMfaPending, storeSession,
} from './api.js';
import { alertBox, errorText, roleBadge, showMessage, toast } from './ui.js';
import { renderStats, renderTasks, renderUsers } from './admin.js';
import { renderSearch, renderMaintenance, renderRetention, renderSettings, renderAuthSettings, renderAudit } from './ops.js';
import { renderProfile, renderFiles } from './account.js';

const RANK = { user: 0, admin: 1, super_admin: 2 };

const ROUTES = [
  { path: 'stats', label: 'Statistics', min: 'admin', render: renderStats },
  { path: 'tasks', label: 'Task health', min: 'admin', render: renderTasks },
  { path: 'users', label: 'Users', min: 'admin', render: renderUsers },
  { path: 'files', label: 'Files', userLabel: 'My files', min: 'user', render: renderFiles },
  { path: 'search', label: 'Search & indexing', min: 'admin', render: renderSearch },
  { path: 'maintenance', label: 'Maintenance', min: 'admin', render: renderMaintenance },
  { path: 'retention', label: 'Retention', min: 'admin', render: renderRetention },
  { path: 'settings', label: 'Settings', min: 'admin', render: renderSettings },
  { path: 'auth', label: 'Authentication', min: 'super_admin', render: renderAuthSettings },
  { path: 'audit', label: 'Audit logs', min: 'super_admin', render: renderAudit },
  { path: 'profile', label: 'Profile', min: 'user', render: renderProfile },
];

const state = {
  me: null,
  ctx: null,
  hub: null,
  hubListeners: new Set(),
  renderSeq: 0,
};

const $ = (id) => document.getElementById(id);

function rank(role) {
  return RANK[role] ?? 0;
}

function mfaPending() {
  return Boolean(getSession()?.mfa_enrollment_required);
}

function allowed(route) {
  if (!state.me) return false;
  if (mfaPending()) return route.path === 'profile';
  return rank(state.me.role) >= rank(route.min);
}

function defaultRoute() {
  if (mfaPending() || !state.me) return 'profile';
  return rank(state.me.role) >= RANK.admin ? 'stats' : 'profile';
}

// ---------------------------------------------------------------------------------------------
// Live events: one stream of every job event the caller may see

function startHub() {
  if (state.hub || mfaPending()) return;
  setLive('connecting');
  state.hub = openStream('/v1/events', {
    onEvent: (name, data) => {
      for (const fn of state.hubListeners) {
        try {
          fn(name, data);
        } catch (e) {
          console.error(e);
        }
      }
    },
    onState: (s) => setLive(s),
  });
}

function stopHub() {
  if (state.hub) state.hub.close();
  state.hub = null;
  setLive('off');
}

function setLive(s) {
  const el = $('live-status');
  if (!el) return;
  const text = { open: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', closed: 'Live updates off', off: '' }[s] ?? '';
  setText(el, text);
  el.dataset.state = s;
}

// ---------------------------------------------------------------------------------------------
// Section context

function makeCtx() {
  const ac = new AbortController();
  const cleanups = [];
  const ctx = {
    me: state.me,
    role: state.me?.role,
    isAdmin: rank(state.me?.role) >= RANK.admin,
    isSuper: rank(state.me?.role) >= RANK.super_admin,
    mfaPending: mfaPending(),
    signal: ac.signal,
    get disposed() {
      return ac.signal.aborted;
    },
    cleanup(fn) {
      cleanups.push(fn);
    },
    /** Every job event (`status`, `progress`, `stopped`, ...) while this section is shown. */
    onEvent(fn) {
      state.hubListeners.add(fn);
      cleanups.push(() => state.hubListeners.delete(fn));
    },
    /** One job's events until it ends; onEnd runs once after a terminal status or a close. */
    watchJob(jobId, { onEvent, onEnd } = {}) {
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        if (onEnd && !ac.signal.aborted) onEnd();
      };
      const s = openStream(`/v1/jobs/${encodeURIComponent(jobId)}/events`, {
        untilTerminal: true,
        onEvent: (name, data) => { if (onEvent && !ac.signal.aborted) onEvent(name, data); },
        onState: (st) => { if (st === 'done' || st === 'closed') end(); },
      });
      cleanups.push(() => s.close());
      return { close: () => s.close() };
    },
    navigate,
    async refreshMe() {
      state.me = await api('/v1/me');
      ctx.me = state.me;
      renderUserBox();
      return state.me;
    },
    mfaDone() {
      setMfaPending(false);
      buildNav();
      startHub();
    },
    dispose() {
      ac.abort();
      for (const fn of cleanups.splice(0)) {
        try {
          fn();
        } catch (e) {
          console.error(e);
        }
      }
    },
  };
  return ctx;
}

// ---------------------------------------------------------------------------------------------
// Router

function currentPath() {
  const p = window.location.pathname.replace(/\/+$/, '');
  const m = /^\/admin\/([^/]+)/.exec(p);
  return m ? decodeURIComponent(m[1]) : '';
}

export function navigate(path, { replace: rep = false } = {}) {
  const url = `/admin/${path}`;
  if (rep) window.history.replaceState({}, '', url);
  else if (window.location.pathname !== url) window.history.pushState({}, '', url);
  route();
}

async function route() {
  if (!state.me) return;
  let name = currentPath();
  if (!name) {
    name = defaultRoute();
    window.history.replaceState({}, '', `/admin/${name}`);
  }
  const r = ROUTES.find((x) => x.path === name);
  if (r && !allowed(r) && mfaPending()) {
    window.history.replaceState({}, '', '/admin/profile');
    name = 'profile';
  }
  const target = ROUTES.find((x) => x.path === name);
  const main = $('main');
  if (state.ctx) state.ctx.dispose();
  state.ctx = makeCtx();
  const ctx = state.ctx;
  const seq = ++state.renderSeq;
  markNav(name);
  closeMobileNav();
  replace(main);
  if (!target) {
    document.title = 'Not found · voxfleet admin';
    replace(main, h('h1', { id: 'page-title', tabindex: '-1', text: 'Page not found' }),
      alertBox(`There is no section "${name}".`, 'warn'),
      h('p', null, h('a', { href: `/admin/${defaultRoute()}`, 'data-route': '', text: 'Go to the start page' })));
    focusTitle();
    return;
  }
  if (!allowed(target)) {
    document.title = `${target.label} · voxfleet admin`;
    replace(main, h('h1', { id: 'page-title', tabindex: '-1', text: target.label }),
      alertBox(`This section needs the ${target.min.replace('_', ' ')} role; you are signed in as ${state.me.role.replace('_', ' ')}.`, 'warn', 'forbidden'));
    focusTitle();
    return;
  }
  document.title = `${labelOf(target)} · voxfleet admin`;
  try {
    await target.render(main, ctx);
  } catch (e) {
    if (ctx.disposed || seq !== state.renderSeq || (e && e.name === 'AbortError')) return;
    if (e && e.sessionEnded) return;
    main.appendChild(alertBox(e instanceof ApiError ? e : new ApiError(0, 'client_error', String(e && e.message ? e.message : e))));
    console.error(e);
  }
  if (seq === state.renderSeq) focusTitle();
}

let focusAfterNav = false;
function focusTitle() {
  if (!focusAfterNav) return;
  focusAfterNav = false;
  const t = $('page-title');
  if (t) t.focus({ preventScroll: false });
}

function labelOf(r) {
  return state.me && state.me.role === 'user' && r.userLabel ? r.userLabel : r.label;
}

// ---------------------------------------------------------------------------------------------
// Shell

function buildNav() {
  const list = $('nav-list');
  replace(list);
  for (const r of ROUTES) {
    if (!allowed(r)) continue;
    list.appendChild(h('li', null, h('a', {
      href: `/admin/${r.path}`,
      class: 'nav-link',
      'data-route': '',
      testid: `nav-${r.path}`,
      id: `nav-${r.path}`,
      text: labelOf(r),
    })));
  }
  markNav(currentPath());
}

function markNav(name) {
  for (const a of document.querySelectorAll('#nav-list a')) {
    if (a.getAttribute('href') === `/admin/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function renderUserBox() {
  const box = $('user-box');
  if (!state.me) {
    replace(box);
    return;
  }
  replace(box,
    h('span', { class: 'user-name', testid: 'me-name', text: state.me.name || state.me.email || 'Signed in' }),
    roleBadge(state.me.role));
}

function closeMobileNav() {
  const nav = $('nav');
  const btn = $('nav-toggle');
  nav.classList.remove('nav-open');
  btn.setAttribute('aria-expanded', 'false');
}

function showSignIn(message, kind = 'info') {
  stopHub();
  if (state.ctx) state.ctx.dispose();
  state.ctx = null;
  state.me = null;
  $('app-view').hidden = true;
  // The sign-in form is all there is: nothing to skip to.
  $('skip-link').hidden = true;
  $('signin-view').hidden = false;
  document.title = 'Sign in · voxfleet admin';
  const form = $('signin-form');
  form.reset();
  $('signin-code-field').hidden = true;
  $('signin-code').required = false;
  showMessage($('signin-error'), message ? (typeof message === 'string' ? message : message) : null, kind);
  $('signin-email').focus();
}

async function startApp() {
  $('signin-view').hidden = true;
  $('skip-link').hidden = false;
  const main = $('main');
  try {
    state.me = await api('/v1/me');
  } catch (e) {
    if (e && e.sessionEnded) return;
    if (!getSession()) {
      showSignIn(e, 'error');
      return;
    }
    $('app-view').hidden = false;
    replace(main, h('h1', { id: 'page-title', tabindex: '-1', text: 'Could not load your account' }),
      alertBox(e),
      h('p', null, h('button', { type: 'button', class: 'btn btn-primary', text: 'Try again', on: { click: () => startApp() } })));
    return;
  }
  $('app-view').hidden = false;
  renderUserBox();
  buildNav();
  startHub();
  await route();
}

async function signIn(e) {
  e.preventDefault();
  const err = $('signin-error');
  const btn = $('signin-submit');
  const codeField = $('signin-code-field');
  const email = $('signin-email').value.trim();
  const password = $('signin-password').value;
  const code = $('signin-code').value.trim();
  if (!email || !password) {
    showMessage(err, 'Enter your email and password.');
    return;
  }
  if (!codeField.hidden && !code) {
    showMessage(err, 'Enter the 6-digit code from your authenticator app, or a backup code.');
    $('signin-code').focus();
    return;
  }
  showMessage(err, null);
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  try {
    const body = { email, password };
    if (!codeField.hidden && code) body.code = code;
    const issued = await api('/v1/auth/login', { method: 'POST', body, auth: false });
    storeSession(issued);
    $('signin-password').value = '';
    $('signin-code').value = '';
    focusAfterNav = true;
    await startApp();
    if (issued.mfa_enrollment_required) {
      toast('Your role signs in with a second factor: set it up below to reach the rest of the dashboard.', 'warn');
    }
  } catch (ex) {
    if (ex.code === 'mfa_required') {
      codeField.hidden = false;
      $('signin-code').required = true;
      showMessage(err, 'Enter the 6-digit code from your authenticator app, or one of your backup codes.', 'info');
      $('signin-code').focus();
    } else {
      showMessage(err, ex);
      if (ex.code === 'invalid_mfa_code') $('signin-code').select();
    }
  } finally {
    btn.disabled = false;
    btn.removeAttribute('aria-busy');
  }
}

async function signOut() {
  const btn = $('logout');
  btn.disabled = true;
  try {
    await api('/v1/auth/logout', { method: 'POST' });
  } catch (e) {
    // an API token (not a session) or an ended session: signed out here all the same
    if (e.code !== 'network') console.warn('logout:', errorText(e));
  } finally {
    btn.disabled = false;
  }
  clearSession({ everywhere: true });
  showSignIn('You are signed out.', 'info');
}

// ---------------------------------------------------------------------------------------------
// Network banner

let netFailed = false;
function setNetwork(failed) {
  if (failed === netFailed) return;
  netFailed = failed;
  $('net-banner').hidden = !failed;
}

// ---------------------------------------------------------------------------------------------
// Boot

function install() {
  setHooks({
    network: setNetwork,
    signedOut: (message, kind = 'error') => showSignIn(message, kind),
    mfaRequired: () => {
      if (mfaPending()) return;
      setMfaPending(true);
      stopHub();
      buildNav();
      navigate('profile', { replace: true });
      toast('Set up your second factor first: until then only your profile is reachable.', 'warn');
    },
  });

  $('signin-form').addEventListener('submit', signIn);
  $('logout').addEventListener('click', signOut);
  $('net-retry').addEventListener('click', () => route());
  $('nav-toggle').addEventListener('click', () => {
    const nav = $('nav');
    const open = !nav.classList.contains('nav-open');
    nav.classList.toggle('nav-open', open);
    $('nav-toggle').setAttribute('aria-expanded', String(open));
    if (open) {
      const first = nav.querySelector('a');
      if (first) first.focus();
    }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && $('nav').classList.contains('nav-open')) {
      closeMobileNav();
      $('nav-toggle').focus();
    }
  });

  // In-page links: <a data-route href="/admin/...">
  document.addEventListener('click', (e) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    const a = e.target.closest && e.target.closest('a[data-route]');
    if (!a) return;
    const href = a.getAttribute('href');
    if (!href || !href.startsWith('/admin')) return;
    e.preventDefault();
    focusAfterNav = true;
    if (window.location.pathname !== href) window.history.pushState({}, '', href);
    route();
  });
  window.addEventListener('popstate', () => {
    focusAfterNav = true;
    route();
  });

  window.addEventListener('unhandledrejection', (e) => {
    const r = e.reason;
    if (r && (r.name === 'AbortError' || r.sessionEnded)) return;
    console.error(r);
    toast(r instanceof ApiError ? r : `Something went wrong: ${r && r.message ? r.message : r}`, 'error');
  });
  window.addEventListener('error', (e) => {
    console.error(e.error || e.message);
  });

  if (getSession()) startApp();
  else showSignIn();
}

install();
