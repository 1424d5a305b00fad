// Shared widgets: alerts, toasts, badges, chips, bars, job progress, dialogs, form fields.
import { h, append, clear, replace, setText, nextId, fmtNum, fmtPct, fmtDuration, isNum } from './dom.js';

// ---------------------------------------------------------------------------------------------
// Messages

export function errorText(err) {
  if (!err) return '';
  if (typeof err === 'string') return err;
  const msg = err.message || String(err);
  return err.code ? `${msg} (${err.code})` : msg;
}

/** An alert box for an error (or a plain message with kind 'info' | 'ok' | 'warn'). */
export function alertBox(err, kind = 'error', testid) {
  const role = kind === 'error' ? 'alert' : 'status';
  if (typeof err === 'string' || !err) return h('div', { class: `alert alert-${kind}`, role, testid, text: err || '' });
  return h('div', { class: `alert alert-${kind}`, role, testid },
    h('span', { class: 'alert-msg', text: err.message || String(err) }),
    err.code ? h('code', { class: 'alert-code', text: err.code }) : null);
}

/** Shows an error (or clears it with null) in a message element that stays in place. */
export function showMessage(el, err, kind = 'error') {
  if (!err) {
    clear(el);
    el.hidden = true;
    return;
  }
  el.hidden = false;
  el.className = `alert alert-${kind}`;
  el.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  if (typeof err === 'string') {
    replace(el, err);
  } else {
    replace(el, h('span', { class: 'alert-msg', text: err.message || String(err) }),
      err.code ? h('code', { class: 'alert-code', text: err.code }) : null);
  }
}

export function messageEl(testid) {
  return h('div', { class: 'alert', hidden: true, testid, 'aria-live': 'polite' });
}

export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const t = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('span', { text: typeof message === 'string' ? message : errorText(message) }),
    h('button', { type: 'button', class: 'toast-close', 'aria-label': 'Dismiss', text: '×', on: { click: () => t.remove() } }));
  box.appendChild(t);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => t.remove(), kind === 'error' ? 10000 : 4000);
}

// ---------------------------------------------------------------------------------------------
// Small pieces

export function badge(text, kind = 'muted', testid) {
  return h('span', { class: `badge badge-${kind}`, testid, text });
}

const ROLE_KIND = { user: 'muted', admin: 'info', super_admin: 'accent' };
const ROLE_LABEL = { user: 'User', admin: 'Admin', super_admin: 'Super admin' };
export function roleLabel(role) {
  return ROLE_LABEL[role] || role;
}
export function roleBadge(role) {
  return badge(roleLabel(role), ROLE_KIND[role] || 'muted', 'role-badge');
}

export function statusKind(status) {
  switch (status) {
    case 'succeeded': case 'completed': case 'transcribed': case 'finalized': case 'ok': case 'running_ok':
    case 'fresh':
      return 'ok';
    case 'running': case 'processing': case 'draining':
      return 'info';
    case 'queued': case 'retrying': case 'uploaded': case 'rolled_back':
      return 'muted';
    case 'failed': case 'lost': case 'needs_repair': case 'offline':
      return 'danger';
    case 'cancelled': case 'stopped': case 'stalled': case 'stale':
      return 'warn';
    default:
      return 'muted';
  }
}

export function statusBadge(status, testid) {
  return badge(String(status ?? '—').replace(/_/g, ' '), statusKind(status), testid);
}

/** A status chip: label and value. */
export function chip(label, value, kind = 'muted', testid) {
  const v = value instanceof Node ? value : h('span', { class: 'chip-value num', text: value });
  return h('span', { class: `chip chip-${kind}`, testid }, h('span', { class: 'chip-label', text: label }), v);
}

export function card(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', { class: 'card-title', text: title }) : null, ...children);
}

/** A definition list of [label, value] pairs (values: text or nodes). */
export function kv(pairs, cls = '') {
  const dl = h('dl', { class: ['kv', cls] });
  for (const [k, v] of pairs) {
    if (v === undefined) continue;
    dl.appendChild(h('dt', { text: k }));
    dl.appendChild(h('dd', { class: 'num' }, v === null ? '—' : v));
  }
  return dl;
}

/** A stat tile: a big number with a label. */
export function stat(label, value, sub, testid) {
  return h('div', { class: 'stat', testid },
    h('div', { class: 'stat-value num', text: value }),
    h('div', { class: 'stat-label', text: label }),
    sub ? h('div', { class: 'stat-sub', text: sub }) : null);
}

export function pageHeader(title, ...actions) {
  return h('div', { class: 'page-header' },
    h('h1', { id: 'page-title', tabindex: '-1', text: title }),
    actions.length ? h('div', { class: 'page-actions' }, ...actions) : null);
}

export function button(label, onClick, { kind = 'secondary', testid, id, disabled, type = 'button', title, ariaLabel } = {}) {
  return h('button', { type, class: `btn btn-${kind}`, testid, id, disabled, title, 'aria-label': ariaLabel, text: label, on: { click: onClick } });
}

/**
 * Enables or disables a button; while busy() runs on it the wish is kept and applied after.
 */
export function enable(btn, on) {
  btn.vfWant = Boolean(on);
  if (!btn.vfBusy) btn.disabled = !on;
}

/** Runs fn with the button disabled and marked busy. */
export async function busy(btn, fn) {
  if (btn.disabled || btn.vfBusy) return undefined;
  btn.vfBusy = true;
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  try {
    return await fn();
  } finally {
    btn.vfBusy = false;
    btn.disabled = btn.vfWant === false;
    btn.removeAttribute('aria-busy');
  }
}

export function loading(text = 'Loading…') {
  return h('p', { class: 'loading muted', role: 'status', text });
}

export function empty(text) {
  return h('p', { class: 'empty muted', text });
}

/** A horizontal bar: value of max, with warn/danger colours from warnPct and 100 %. */
export function usageBar({ label, warnPct = 80, testid } = {}) {
  const fill = h('span', { class: 'bar-fill' });
  const el = h('div', { class: 'bar', role: 'progressbar', 'aria-label': label, 'aria-valuemin': '0', 'aria-valuemax': '100', testid }, fill);
  const update = (value, max) => {
    const pct = isNum(value) && isNum(max) && max > 0 ? Math.min(100, Math.max(0, (value / max) * 100)) : null;
    fill.style.width = pct === null ? '0%' : `${pct}%`;
    el.setAttribute('aria-valuenow', pct === null ? '0' : String(Math.round(pct)));
    el.classList.toggle('bar-warn', pct !== null && pct >= warnPct && pct < 100);
    el.classList.toggle('bar-danger', pct !== null && pct >= 100);
    el.classList.toggle('bar-empty', pct === null);
    return pct;
  };
  return { el, update };
}

export function barWith(value, max, opts) {
  const b = usageBar(opts);
  b.update(value, max);
  return b.el;
}

/** Progress of a job: state badge, <progress>, done/total, percent and ETA. */
export function jobProgress(testid, label = 'Progress') {
  const state = h('span', { class: 'jp-state', testid: testid ? `${testid}-state` : undefined });
  const bar = h('progress', { class: 'jp-bar', max: '100', testid, 'aria-label': label });
  const counts = h('span', { class: 'num jp-counts', testid: testid ? `${testid}-counts` : undefined });
  const pct = h('span', { class: 'num jp-pct', testid: testid ? `${testid}-percent` : undefined });
  const eta = h('span', { class: 'num jp-eta', testid: testid ? `${testid}-eta` : undefined });
  const el = h('div', { class: 'jobprogress' },
    h('div', { class: 'jp-top' }, state, h('span', { class: 'jp-line' }, counts, pct, eta)),
    bar);
  let lastState = null;
  const update = (progress, st) => {
    if (st !== undefined && st !== lastState) {
      lastState = st;
      replace(state, st ? statusBadge(st) : '');
    }
    if (progress && isNum(progress.total)) {
      const p = isNum(progress.percent) ? progress.percent : (progress.total ? (progress.done / progress.total) * 100 : 100);
      bar.value = Math.max(0, Math.min(100, p));
      setText(counts, `${fmtNum(progress.done)} / ${fmtNum(progress.total)}`);
      setText(pct, fmtPct(p, 1));
      const running = st === 'running' || st === undefined || st === null;
      setText(eta, isNum(progress.eta_seconds) && running && progress.done < progress.total ? `ETA ${fmtDuration(progress.eta_seconds)}` : '');
    } else if (st === 'running' || st === 'queued') {
      bar.removeAttribute('value');
      setText(counts, st === 'queued' ? 'waiting for a worker' : 'starting…');
      setText(pct, '');
      setText(eta, '');
    } else {
      if (!bar.hasAttribute('value')) bar.value = 0;
      setText(counts, '');
      setText(pct, '');
      setText(eta, '');
    }
  };
  return { el, update };
}

// ---------------------------------------------------------------------------------------------
// Form fields

/** A labelled control. control: an element (input/select/textarea) whose id is set here. */
export function field(label, control, { hint, id, wide = false, inline = false } = {}) {
  const cid = control.id || id || nextId('f');
  control.id = cid;
  let hintEl = null;
  if (hint) {
    hintEl = h('small', { class: 'hint', id: `${cid}-hint`, text: hint });
    control.setAttribute('aria-describedby', hintEl.id);
  }
  if (inline) {
    return h('div', { class: ['field field-inline', wide && 'field-wide'] },
      control, h('label', { for: cid, text: label }), hintEl);
  }
  return h('div', { class: ['field', wide && 'field-wide'] }, h('label', { for: cid, text: label }), control, hintEl);
}

export function input(props) {
  return h('input', { type: 'text', ...props });
}

export function select(options, props = {}) {
  const el = h('select', props);
  for (const o of options) {
    const [value, label] = Array.isArray(o) ? o : [o, o];
    el.appendChild(h('option', { value, text: label }));
  }
  if (props.value !== undefined) el.value = props.value;
  return el;
}

export function checkbox(props) {
  return h('input', { type: 'checkbox', ...props });
}

/** The value of a number input: null when empty, NaN when not a number. */
export function numberValue(el) {
  const s = el.value.trim();
  if (s === '') return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : NaN;
}

// ---------------------------------------------------------------------------------------------
// Dialogs

/**
 * A modal <dialog>: title, body nodes and action buttons. Closing (Escape, a cancel button or
 * close()) removes it and returns focus to what had it.
 */
export function openDialog({ title, body = [], actions = [], testid, wide = false, onClose } = {}) {
  const opener = document.activeElement;
  const titleId = nextId('dlg');
  const dialog = h('dialog', { class: ['dialog', wide && 'dialog-wide'], 'aria-labelledby': titleId, testid });
  const close = () => {
    if (dialog.open) dialog.close();
  };
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (onClose) onClose();
    if (opener && typeof opener.focus === 'function' && document.contains(opener)) opener.focus();
  });
  append(dialog, [
    h('div', { class: 'dialog-head' },
      h('h2', { id: titleId, text: title }),
      h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Close', text: '×', on: { click: close } })),
    h('div', { class: 'dialog-body' }, ...body),
    actions.length ? h('div', { class: 'dialog-actions' }, ...actions) : null,
  ]);
  document.body.appendChild(dialog);
  dialog.showModal();
  return { dialog, close };
}

/**
 * Asks for confirmation. requireCheck: a checkbox label that must be ticked first (a second
 * confirmation). Resolves true when confirmed.
 */
export function confirmDialog({ title, message, details, confirmLabel = 'Confirm', danger = false, requireCheck } = {}) {
  return new Promise((resolve) => {
    let result = false;
    const ok = h('button', { type: 'button', class: `btn ${danger ? 'btn-danger' : 'btn-primary'}`, testid: 'confirm-ok', text: confirmLabel });
    const cancel = h('button', { type: 'button', class: 'btn btn-secondary', testid: 'confirm-cancel', text: 'Cancel' });
    const body = [];
    if (message) body.push(h('p', { text: message }));
    if (details) body.push(...(Array.isArray(details) ? details : [details]));
    if (requireCheck) {
      const cb = checkbox({ testid: 'confirm-check' });
      ok.disabled = true;
      cb.addEventListener('change', () => { ok.disabled = !cb.checked; });
      body.push(field(requireCheck, cb, { inline: true }));
    }
    const d = openDialog({ title, body, actions: [cancel, ok], testid: 'confirm-dialog', onClose: () => resolve(result) });
    ok.addEventListener('click', () => { result = true; d.close(); });
    cancel.addEventListener('click', () => d.close());
    (requireCheck ? d.dialog.querySelector('input') : cancel).focus();
  });
}

/** A dialog around a form: onSubmit(form) may throw an ApiError, shown in the form. */
export function formDialog({ title, fields, submitLabel = 'Save', testid, errorTestid = 'form-error', submitTestid, onSubmit, wide = false }) {
  const err = messageEl(errorTestid);
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: submitTestid, text: submitLabel });
  const cancel = h('button', { type: 'button', class: 'btn btn-secondary', text: 'Cancel' });
  const form = h('form', { class: 'form-grid', novalidate: true, testid }, ...fields, err,
    h('div', { class: 'dialog-actions' }, cancel, submit));
  const d = openDialog({ title, body: [form], wide });
  cancel.addEventListener('click', () => d.close());
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showMessage(err, null);
    await busy(submit, async () => {
      try {
        const done = await onSubmit(form, err);
        if (done !== false) d.close();
      } catch (ex) {
        showMessage(err, ex);
      }
    });
  });
  const first = form.querySelector('input:not([type=hidden]):not([disabled]), select:not([disabled]), textarea');
  if (first) first.focus();
  return { ...d, form, err };
}

/**
 * A table from column headers and row elements (tr). Stackable tables turn into labelled
 * blocks on phones (each cell gets its column's name as data-label). `caption` is the table's
 * name for screen readers (visually hidden): give every table one.
 */
export function table(headers, rows, { testid, caption, cls = '', stack = false } = {}) {
  const thead = h('thead', null, h('tr', null, headers.map((c) => {
    const [text, kind] = Array.isArray(c) ? c : [c, ''];
    return h('th', { scope: 'col', class: kind, text });
  })));
  const tbody = h('tbody', null, rows);
  const t = h('table', { class: ['table', cls, stack && 'stackable'], testid }, caption ? h('caption', { class: 'sr-only', text: caption }) : null, thead, tbody);
  if (stack) labelCells(t);
  return { el: h('div', { class: 'table-wrap' }, t), table: t, tbody };
}

/** Copies each column's header text into its cells' data-label (for the phone layout). */
export function labelCells(tableEl) {
  const names = [...tableEl.querySelectorAll('thead th')].map((th) => th.textContent);
  for (const tr of tableEl.querySelectorAll('tbody tr')) {
    [...tr.children].forEach((cell, i) => {
      if (names[i] && !cell.hasAttribute('data-label') && !cell.hasAttribute('colspan')) cell.dataset.label = names[i];
    });
  }
}

export function td(content, cls) {
  return h('td', { class: cls }, content);
}
