// DOM building and formatting helpers. Every value that comes from the API is inserted as
// text (textContent / text nodes), never parsed as HTML.

const DEFERRED = new Set(['value', 'checked', 'selected', 'indeterminate']);
const PROPS = new Set(['disabled', 'hidden', 'required', 'readOnly', 'multiple', 'open']);

/** h('tag', {class, id, text, testid, on: {click}, dataset, ...attrs}, ...children) */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  const later = [];
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === undefined || v === null) continue;
      if (k === 'class') {
        const cls = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
        if (cls) el.className = cls;
      } else if (k === 'text') {
        el.textContent = String(v);
      } else if (k === 'on') {
        for (const [ev, fn] of Object.entries(v)) if (fn) el.addEventListener(ev, fn);
      } else if (k === 'dataset') {
        for (const [dk, dv] of Object.entries(v)) if (dv !== undefined && dv !== null) el.dataset[dk] = String(dv);
      } else if (k === 'testid') {
        el.setAttribute('data-testid', v);
      } else if (k === 'for') {
        el.htmlFor = v;
      } else if (DEFERRED.has(k)) {
        later.push([k, v]);
      } else if (PROPS.has(k)) {
        el[k] = Boolean(v);
      } else if (k === 'style') {
        throw new Error('inline styles are not allowed (CSP)');
      } else if (v === false) {
        continue;
      } else if (v === true) {
        el.setAttribute(k, '');
      } else {
        el.setAttribute(k, String(v));
      }
    }
  }
  append(el, children);
  for (const [k, v] of later) el[k] = v;
  return el;
}

export function append(el, children) {
  const list = Array.isArray(children) ? children : [children];
  for (const c of list) {
    if (c === null || c === undefined || c === false || c === true) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

export function setText(el, value) {
  const s = value === null || value === undefined ? '' : String(value);
  if (el.textContent !== s) el.textContent = s;
}

let uid = 0;
/** A unique id for label/for pairs of controls created more than once. */
export function nextId(prefix) {
  uid += 1;
  return `${prefix}-${uid}`;
}

// ---------------------------------------------------------------------------------------------
// Formatting

const nf = new Map();
function numberFormat(min, max) {
  const key = `${min}:${max}`;
  if (!nf.has(key)) nf.set(key, new Intl.NumberFormat(undefined, { minimumFractionDigits: min, maximumFractionDigits: max }));
  return nf.get(key);
}

export function isNum(n) {
  return typeof n === 'number' && Number.isFinite(n);
}

export function fmtNum(n, digits = 0, minDigits = 0) {
  if (!isNum(n)) return '—';
  return numberFormat(Math.min(minDigits, digits), digits).format(n);
}

export function fmtPct(n, digits = 0) {
  if (!isNum(n)) return '—';
  return `${fmtNum(n, digits, digits)} %`;
}

const usd = new Intl.NumberFormat(undefined, { style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 4 });
export function fmtUsd(n) {
  if (!isNum(n)) return '—';
  return usd.format(n);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function fmtBytes(n) {
  if (!isNum(n)) return '—';
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${fmtNum(v, i === 0 ? 0 : 1, i === 0 ? 0 : 1)} ${UNITS[i]}`;
}

export function fmtDuration(seconds) {
  if (!isNum(seconds)) return '—';
  const s = Math.max(0, seconds);
  if (s < 1) return `${fmtNum(s, 2)} s`;
  if (s < 60) return `${fmtNum(s, s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.floor(s % 60)).padStart(2, '0')} s`;
  const hh = Math.floor(m / 60);
  if (hh < 48) return `${hh} h ${String(m % 60).padStart(2, '0')} min`;
  return `${Math.floor(hh / 24)} d ${hh % 24} h`;
}

export function fmtMinutes(min) {
  if (!isNum(min)) return '—';
  return `${fmtNum(min, 1)} min`;
}

const dtShort = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'short' });
const dtMedium = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });
const dOnly = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

function toDate(v) {
  if (!v) return null;
  const d = v instanceof Date ? v : new Date(v);
  return Number.isNaN(d.getTime()) ? null : d;
}

export function fmtDate(v, withSeconds = false) {
  const d = toDate(v);
  if (!d) return '—';
  return (withSeconds ? dtMedium : dtShort).format(d);
}

export function fmtDay(v) {
  const d = toDate(v);
  return d ? dOnly.format(d) : '—';
}

export function fmtAgo(v) {
  const d = toDate(v);
  if (!d) return '—';
  const s = (Date.now() - d.getTime()) / 1000;
  if (s < 0) return `in ${fmtDuration(-s)}`;
  if (s < 5) return 'just now';
  return `${fmtDuration(s)} ago`;
}

/** A <time> element showing a date, with the ISO value and full form as a tooltip. */
export function timeEl(v, withSeconds = false) {
  const d = toDate(v);
  if (!d) return h('span', { class: 'muted', text: '—' });
  return h('time', { datetime: d.toISOString(), title: d.toString(), text: fmtDate(d, withSeconds) });
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : '—';
}

/** Today's date as YYYY-MM-DD, in UTC (the server names exports by its UTC day). */
export function utcDay(d = new Date()) {
  return d.toISOString().slice(0, 10);
}

export function thisMonth() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, '0')}`;
}

// ---------------------------------------------------------------------------------------------
// Timing

export function debounce(fn, ms) {
  let t = null;
  const d = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
  d.cancel = () => clearTimeout(t);
  return d;
}

/** At most one call per `ms`; a call inside the window runs once at its end. */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  const t = () => {
    const wait = last + ms - Date.now();
    if (wait <= 0) {
      last = Date.now();
      fn();
    } else if (!timer) {
      timer = setTimeout(() => {
        timer = null;
        last = Date.now();
        fn();
      }, wait);
    }
  };
  t.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  return t;
}

export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });
}
