// Everyone's sections: the profile (usage, budgets, costs, second factor, password, tokens)
// and files; and the token table shared with the users section.
import {
  h, append, replace, fmtNum, fmtPct, fmtBytes, fmtUsd, fmtDuration, fmtMinutes, fmtDay,
  timeEl, shortId, throttle,
} from './dom.js';
import { api, saveBlob, TERMINAL } from './api.js';
import {
  alertBox, badge, button, busy, card, checkbox, confirmDialog, empty, field, input, kv, loading,
  labelCells, messageEl, pageHeader, roleBadge, select, showMessage, statusBadge, table, td, toast, usageBar,
} from './ui.js';

// ---------------------------------------------------------------------------------------------
// Clipboard

export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall back below
  }
  const ta = h('textarea', { class: 'offscreen', readonly: true, 'aria-hidden': 'true' });
  ta.value = text;
  document.body.appendChild(ta);
  ta.select();
  let ok = false;
  try {
    ok = document.execCommand('copy');
  } catch {
    ok = false;
  }
  ta.remove();
  return ok;
}

function copyButton(getText, label = 'Copy', testid) {
  const b = button(label, async () => {
    const ok = await copyText(getText());
    toast(ok ? 'Copied to the clipboard.' : 'Copying failed: select the text and copy it by hand.', ok ? 'ok' : 'warn');
  }, { testid, kind: 'secondary btn-small' });
  return b;
}

/** A secret shown once, with a copy button. */
function secretBox(label, secret, testid) {
  return h('div', { class: 'secret-box', role: 'status' },
    h('p', { class: 'strong', text: label }),
    h('div', { class: 'secret-row' }, h('code', { class: 'secret', testid, text: secret }), copyButton(() => secret, 'Copy', `${testid}-copy`)),
    h('p', { class: 'muted small', text: 'It is shown only once: store it somewhere safe now.' }));
}

// ---------------------------------------------------------------------------------------------
// Tokens

function tokenState(t) {
  if (t.revoked_at) return badge('revoked', 'muted');
  if (t.expires_at && Date.parse(t.expires_at) <= Date.now()) return badge('expired', 'warn');
  return badge('active', 'ok');
}

/**
 * A user's API tokens: list, mint (secret shown once), optionally revoke (own tokens) and
 * grant delegation (admins).
 */
export function tokensPanel({ listPath, createPath, canDelegate = false, canRevoke = false, revokePath, testid }) {
  const msg = messageEl('tokens-error');
  const list = h('div', null, loading());
  const secret = h('div');
  const name = input({ id: `${testid}-name`, testid: 'token-name', maxlength: '100', autocomplete: 'off', required: true });
  const expires = input({ id: `${testid}-expires`, testid: 'token-expires', type: 'date' });
  const create = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'token-create', text: 'Create token' });
  const form = h('form', { class: 'inline-form', novalidate: true },
    field('Token name', name, { hint: 'What it is for (1–100 characters).' }),
    field('Expires (optional)', expires, { hint: 'Empty: never.' }),
    h('div', { class: 'field field-button' }, create));

  async function load() {
    try {
      const r = await api(listPath);
      showMessage(msg, null);
      if (!r.tokens.length) {
        replace(list, empty('No tokens yet.'));
        return;
      }
      const rows = r.tokens.map((t) => {
        const cells = [
          td(h('span', { class: 'strong', text: t.name })),
          td(tokenState(t)),
          td(timeEl(t.created_at)),
          td(timeEl(t.last_used_at)),
          td(t.expires_at ? timeEl(t.expires_at) : 'never'),
        ];
        if (canDelegate) {
          const cb = checkbox({ checked: t.can_delegate, disabled: Boolean(t.revoked_at), testid: 'token-delegate', 'aria-label': `Token ${t.name} may act for other users` });
          cb.addEventListener('change', async () => {
            cb.disabled = true;
            try {
              await api(`/v1/tokens/${t.id}`, { method: 'PATCH', body: { can_delegate: cb.checked } });
              toast(`Delegation ${cb.checked ? 'granted to' : 'withdrawn from'} ${t.name}.`, 'ok');
            } catch (e) {
              cb.checked = !cb.checked;
              toast(e, 'error');
            } finally {
              cb.disabled = false;
            }
          });
          cells.push(td(cb));
        }
        if (canRevoke) {
          cells.push(td(t.revoked_at ? '' : button('Revoke', async () => {
            const ok = await confirmDialog({
              title: `Revoke ${t.name}?`,
              message: 'The token stops working at once, for good. Whatever uses it must get a new one.',
              confirmLabel: 'Revoke token',
              danger: true,
            });
            if (!ok) return;
            try {
              await api(revokePath(t.id), { method: 'DELETE' });
              toast(`${t.name} is revoked.`, 'ok');
              load();
            } catch (e) {
              toast(e, 'error');
            }
          }, { testid: 'token-revoke', kind: 'danger-outline btn-small' })));
        }
        return h('tr', { testid: 'token-row', dataset: { tokenId: t.id } }, cells);
      });
      const headers = ['Name', 'State', 'Created', 'Last used', 'Expires'];
      if (canDelegate) headers.push('May delegate');
      if (canRevoke) headers.push('');
      replace(list, table(headers, rows, { testid: 'tokens-table', caption: 'API tokens' }).el);
    } catch (e) {
      replace(list);
      showMessage(msg, e);
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(create, async () => {
      const n = name.value.trim();
      if (!n) {
        showMessage(msg, 'Give the token a name.');
        name.focus();
        return;
      }
      const body = { name: n };
      if (expires.value) {
        const at = new Date(`${expires.value}T23:59:59`);
        if (at.getTime() <= Date.now()) {
          showMessage(msg, '`expires_at` must be a time in the future');
          expires.focus();
          return;
        }
        body.expires_at = at.toISOString();
      }
      try {
        const t = await api(createPath, { method: 'POST', body });
        showMessage(msg, null);
        replace(secret, secretBox(`New token "${t.name}"`, t.token, 'token-secret'));
        form.reset();
        load();
      } catch (ex) {
        showMessage(msg, ex);
      }
    });
  });
  load();
  return h('div', { class: 'stack', testid }, list, msg, secret, form);
}

// ---------------------------------------------------------------------------------------------
// Profile

function budgetBlock(title, b, { unit, digits, testid, budget, used, reserved }) {
  const bar = usageBar({ label: title, testid: `${testid}-bar` });
  const total = (used || 0) + (reserved || 0);
  const pct = budget ? bar.update(total, budget) : bar.update(null, null);
  const warning = Boolean(b.warning);
  bar.el.classList.toggle('bar-warn', warning && (pct ?? 0) < 100);
  let text;
  if (!budget) {
    text = `Unlimited · ${fmtNum(used, digits)} ${unit} used this month${reserved ? `, ${fmtNum(reserved, digits)} reserved` : ''}`;
  } else {
    text = `${fmtNum(total, digits)} of ${fmtNum(budget)} ${unit} (${fmtPct(b.percent ?? pct, 0)})${reserved ? ` · ${fmtNum(reserved, digits)} reserved by work in progress` : ''}`;
  }
  return h('div', { class: ['budget', warning && 'budget-warning'], testid, dataset: { warning: warning ? 'true' : 'false' } },
    h('div', { class: 'budget-head' }, h('span', { class: 'strong', text: title }), warning ? badge(pct >= 100 ? 'budget used up' : 'nearly used up', pct >= 100 ? 'danger' : 'warn') : null),
    bar.el,
    h('p', { class: 'num small', text }));
}

export async function renderProfile(root, ctx) {
  append(root, pageHeader('Profile'));
  const body = h('div', { class: 'stack' }, loading());
  root.appendChild(body);
  let me;
  try {
    me = await ctx.refreshMe();
  } catch (e) {
    if (e.name === 'AbortError') return;
    replace(body, alertBox(e));
    return;
  }
  const pending = ctx.mfaPending;
  const parts = [];
  if (pending) {
    parts.push(alertBox('Your role signs in with a second factor. Set it up below; until then the rest of the dashboard stays locked.', 'warn', 'mfa-required-notice'));
  }
  if (me.delegated) parts.push(alertBox('This request acts for this user through a delegating token.', 'info'));
  const u = me.usage || {};
  parts.push(h('div', { class: 'grid grid-2' },
    card('Account', kv([
      ['Name', me.name],
      ['Email', me.email || '—'],
      ['Role', roleBadge(me.role)],
      ['Member since', fmtDay(me.created_at)],
      ['Last sign-in', timeEl(me.last_login_at)],
      ['Public links', me.public_sharing ? 'allowed' : 'not allowed'],
      ['Default language', me.default_language || '—'],
    ])),
    card('This month', kv([
      ['Recordings', fmtNum(u.recordings)],
      ['Storage', fmtBytes(u.storage_bytes)],
      ['Minutes transcribed', fmtMinutes(u.minutes_this_month)],
      ['LLM tokens', fmtNum(u.llm_tokens_this_month)],
      ['Estimated cost', fmtUsd(u.cost_usd_this_month)],
    ]))));
  const tb = me.transcription_budget || {};
  const kb = me.token_budget || {};
  parts.push(card('Budgets',
    budgetBlock('Transcription', tb, { unit: 'min', digits: 1, testid: 'budget-minutes', budget: tb.budget_minutes, used: tb.used_minutes, reserved: tb.reserved_minutes }),
    budgetBlock('LLM tokens', kb, { unit: 'tokens', digits: 0, testid: 'budget-tokens', budget: kb.budget, used: kb.used, reserved: kb.reserved }),
    tb.month_start ? h('p', { class: 'muted small' }, 'The month started ', timeEl(tb.month_start), '.') : null));
  const costs = me.costs || {};
  const conn = (costs.by_connector || []).map((c) => h('tr', null,
    td(c.connector), td(fmtMinutes(c.minutes), 'num'), td(fmtNum(c.llm_tokens), 'num'), td(fmtUsd(c.cost_usd), 'num')));
  parts.push(card('Costs this month',
    conn.length
      ? table(['Connector', ['Minutes', 'num'], ['Tokens', 'num'], ['Cost', 'num']], [
        ...conn,
        h('tr', { class: 'total-row' }, td('Total'), td(fmtMinutes(costs.minutes), 'num'), td(fmtNum(costs.llm_tokens), 'num'), td(fmtUsd(costs.cost_usd), 'num')),
      ], { testid: 'costs-table', caption: 'Costs this month by connector' }).el
      : empty('Nothing spent this month.')));
  parts.push(mfaCard(ctx, pending, Boolean(me.mfa_enabled)));
  if (!pending) {
    parts.push(passwordCard(me.email));
    parts.push(card('API tokens',
      h('p', { class: 'muted small', text: 'Tokens for scripts and platforms acting as you. Sign-in sessions are not listed.' }),
      tokensPanel({ listPath: '/v1/me/tokens', createPath: '/v1/me/tokens', canRevoke: true, revokePath: (id) => `/v1/me/tokens/${id}`, testid: 'my-tokens' })));
  }
  replace(body, ...parts);
}

function mfaCard(ctx, pending, enabled) {
  const msg = messageEl('mfa-error');
  const stage = h('div', { class: 'stack' });
  const enroll = button('Set up two-factor sign-in', () => busy(enroll, start), { kind: 'primary', testid: 'mfa-enroll', id: 'mfa-enroll' });
  enroll.hidden = enabled;

  async function start() {
    showMessage(msg, null);
    try {
      const e = await api('/v1/me/mfa/enroll', { method: 'POST' });
      showEnrollment(e);
    } catch (ex) {
      if (ex.code === 'mfa_state') {
        showMessage(msg, `Two-factor sign-in is already on for this account. Turn it off below first to set up a new authenticator. (${ex.message})`, 'info');
        disableBox.open = true;
      } else {
        showMessage(msg, ex);
      }
    }
  }

  function showEnrollment(e) {
    const code = input({ id: 'mfa-verify-code', testid: 'mfa-verify-code', inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: '6', pattern: '[0-9]{6}', required: true });
    const verify = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'mfa-verify', text: 'Verify and turn on' });
    const form = h('form', { class: 'inline-form', novalidate: true }, field('6-digit code from the app', code), h('div', { class: 'field field-button' }, verify));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      busy(verify, async () => {
        const c = code.value.replace(/\s+/g, '');
        if (!/^\d{6}$/.test(c)) {
          showMessage(msg, 'Enter the 6 digits your authenticator app shows.');
          code.focus();
          return;
        }
        try {
          const r = await api('/v1/me/mfa/verify', { method: 'POST', body: { code: c } });
          showMessage(msg, null);
          showBackupCodes(r.backup_codes);
          enroll.hidden = true;
          disableBox.hidden = false;
          if (pending) {
            ctx.mfaDone();
            toast('Two-factor sign-in is on: the dashboard is unlocked.', 'ok');
          } else {
            toast('Two-factor sign-in is on.', 'ok');
          }
        } catch (ex) {
          showMessage(msg, ex);
          code.select();
        }
      });
    });
    replace(stage,
      h('ol', { class: 'steps' },
        h('li', null, 'Scan this QR code with an authenticator app (any TOTP app: Google Authenticator, Microsoft Authenticator, Authy, …).'),
        h('li', null, 'Enter the 6-digit code it shows to turn two-factor sign-in on.')),
      h('div', { class: 'mfa-setup' },
        h('img', { class: 'qr', testid: 'mfa-qr', alt: 'QR code to scan with an authenticator app', width: '200', height: '200', src: `data:image/png;base64,${e.qr_png_base64}` }),
        h('div', { class: 'stack' },
          h('p', { class: 'small', text: 'Cannot scan? Type this key into the app:' }),
          h('div', { class: 'secret-row' }, h('code', { class: 'secret', testid: 'mfa-secret', text: e.secret }), copyButton(() => e.secret, 'Copy key', 'mfa-secret-copy')),
          h('details', null, h('summary', { text: 'Setup link (otpauth URI)' }), h('code', { class: 'secret small', testid: 'mfa-uri', text: e.otpauth_uri })),
          form)));
    code.focus();
  }

  function showBackupCodes(codes) {
    const text = `voxfleet backup codes (each works once)\n\n${codes.join('\n')}\n`;
    replace(stage, h('div', { class: 'secret-box', role: 'status' },
      h('p', { class: 'strong', text: 'Your backup codes' }),
      h('p', { class: 'small', text: 'Each works once, when your authenticator is not at hand. They are shown only now: copy or download them and keep them safe.' }),
      h('ul', { class: 'codes', testid: 'mfa-backup-codes' }, codes.map((c) => h('li', null, h('code', { text: c })))),
      h('div', { class: 'row-actions' },
        copyButton(() => codes.join('\n'), 'Copy codes', 'mfa-copy'),
        button('Download as text', () => saveBlob(new Blob([text], { type: 'text/plain;charset=utf-8' }), 'voxfleet-backup-codes.txt'), { testid: 'mfa-download', kind: 'secondary btn-small' }))));
  }

  const dcode = input({ id: 'mfa-disable-code', testid: 'mfa-disable-code', autocomplete: 'one-time-code', maxlength: '64', required: true });
  const dbtn = h('button', { type: 'submit', class: 'btn btn-danger-outline', testid: 'mfa-disable', text: 'Turn off' });
  const dform = h('form', { class: 'inline-form', novalidate: true },
    field('Authenticator or backup code', dcode), h('div', { class: 'field field-button' }, dbtn));
  dform.addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy(dbtn, async () => {
      const c = dcode.value.trim();
      if (!c) {
        showMessage(msg, 'Enter a code from your authenticator app or a backup code.');
        dcode.focus();
        return;
      }
      try {
        await api('/v1/me/mfa/disable', { method: 'POST', body: { code: c } });
        dform.reset();
        showMessage(msg, 'Two-factor sign-in is off.', 'ok');
        disableBox.hidden = true;
        enroll.hidden = false;
      } catch (ex) {
        showMessage(msg, ex);
      }
    });
  });
  const disableBox = h('details', { class: 'disable-mfa', hidden: pending || !enabled, open: enabled },
    h('summary', { text: 'Turn off two-factor sign-in' }),
    h('p', { class: 'small muted', text: 'Needs a valid code. Sign-in then asks for the password only.' }),
    dform);

  return card('Two-factor sign-in',
    h('p', { class: 'small', testid: 'mfa-status', text: pending
      ? 'Required for your role and not set up yet.'
      : enabled
        ? 'On: signing in asks for a code from your authenticator app (RFC 6238 TOTP) after the password. To move to a new authenticator, turn it off first, then set it up again.'
        : 'Off. A code from an authenticator app (RFC 6238 TOTP) on top of your password protects this account.' }),
    h('div', { class: 'row-actions' }, enroll),
    msg, stage, disableBox);
}

function passwordCard(email) {
  const current = input({ id: 'pw-current', testid: 'pw-current', type: 'password', autocomplete: 'current-password', required: true });
  const pw = input({ id: 'pw-new', testid: 'pw-new', type: 'password', autocomplete: 'new-password', required: true });
  const confirm = input({ id: 'pw-confirm', testid: 'pw-confirm', type: 'password', autocomplete: 'new-password', required: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'pw-submit', text: 'Change password' });
  const msg = messageEl('pw-error');
  const form = h('form', { class: 'form-grid', novalidate: true },
    h('input', { type: 'text', autocomplete: 'username', value: email || '', hidden: true, readonly: true, tabindex: '-1', 'aria-hidden': 'true' }),
    field('Current password', current),
    field('New password', pw, { hint: 'At least 8 characters; the password policy applies.' }),
    field('Repeat the new password', confirm),
    msg,
    h('div', { class: 'form-actions' }, submit));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(submit, async () => {
      if (!current.value) {
        showMessage(msg, 'Enter your current password.');
        current.focus();
        return;
      }
      if (pw.value.length < 8) {
        showMessage(msg, { message: 'the password must be at least 8 characters', code: 'weak_password' });
        pw.focus();
        return;
      }
      if (pw.value !== confirm.value) {
        showMessage(msg, { message: 'the password and its confirmation differ', code: 'password_mismatch' });
        confirm.focus();
        return;
      }
      try {
        await api('/v1/me/password', { method: 'POST', body: { current_password: current.value, password: pw.value, confirm: confirm.value } });
        form.reset();
        showMessage(msg, 'Password changed. Your other sessions were signed out.', 'ok');
      } catch (ex) {
        showMessage(msg, ex);
      }
    });
  });
  return card('Change password', form);
}

// ---------------------------------------------------------------------------------------------
// Files

const JOB_TO_FILE = { queued: 'queued', retrying: 'queued', running: 'processing', succeeded: 'transcribed', failed: 'failed', cancelled: 'cancelled' };

export async function renderFiles(root, ctx) {
  const status = select([['', 'All'], ['uploaded', 'Uploaded'], ['queued', 'Queued'], ['processing', 'Processing'], ['transcribed', 'Transcribed'], ['failed', 'Failed'], ['cancelled', 'Cancelled']], { id: 'files-status', testid: 'files-status' });
  const refresh = button('Refresh', () => load(true), { testid: 'files-refresh' });
  const msg = messageEl('files-error');
  const list = h('div', null, loading());
  const more = button('Load more', () => load(false), { testid: 'files-more' });
  more.hidden = true;
  append(root, [
    pageHeader(ctx.isAdmin ? 'Files' : 'My files', field('Status', status), refresh),
    ctx.isAdmin ? h('p', { class: 'muted small', text: 'All users\u2019 files, newest first.' }) : null,
    msg, list, h('div', { class: 'center' }, more),
  ]);
  const byJob = new Map();
  let cursor = null;
  let tbody = null;

  function fileRow(f) {
    const statusCell = h('td', null, statusBadge(f.status, 'file-status'));
    const prog = h('progress', { max: '100', class: 'mini-progress', hidden: true, 'aria-label': `progress of ${f.filename}` });
    const cells = [
      td(h('span', { class: 'strong', text: f.filename })),
      statusCell,
      h('td', { class: 'progress-cell' }, prog),
      td(fmtDuration(f.duration_s), 'num'),
      td(fmtBytes(f.size_bytes), 'num'),
      td(f.language || '—'),
      td(f.transcript_model || '—'),
      td(timeEl(f.created_at)),
      td(timeEl(f.transcribed_at)),
    ];
    if (ctx.isAdmin) cells.push(td(f.owner ? h('span', { class: 'mono', title: f.owner, text: shortId(f.owner) }) : '—'));
    cells.push(td(f.error ? h('span', { title: f.error.message }, h('code', { text: f.error.code }), ' ', f.error.message) : (f.probe_error ? h('code', { text: f.probe_error }) : '—')));
    const tr = h('tr', { testid: 'file-row', dataset: { fileId: f.id, status: f.status } }, cells);
    if (f.transcription_job_id) {
      byJob.set(f.transcription_job_id, (ev) => {
        const st = JOB_TO_FILE[ev.status];
        if (st && tr.dataset.status !== st) {
          tr.dataset.status = st;
          replace(statusCell, statusBadge(st, 'file-status'));
        }
        if (ev.status === 'running' && ev.progress) {
          prog.hidden = false;
          prog.value = ev.progress.percent;
        } else if (TERMINAL.has(ev.status)) {
          prog.hidden = true;
        }
      });
    }
    return tr;
  }

  async function load(reset) {
    try {
      const page = await api('/v1/files', { query: { status: status.value || undefined, limit: 50, cursor: reset ? undefined : cursor }, signal: ctx.signal });
      showMessage(msg, null);
      if (reset || !tbody) {
        byJob.clear();
        if (!page.files.length) {
          replace(list, empty(status.value ? 'No file has this status.' : 'No files yet.'));
          tbody = null;
          cursor = null;
          more.hidden = true;
          return;
        }
        const headers = ['Name', 'Status', 'Progress', ['Duration', 'num'], ['Size', 'num'], 'Language', 'Model', 'Uploaded', 'Transcribed'];
        if (ctx.isAdmin) headers.push('Owner');
        headers.push('Error');
        const t = table(headers, page.files.map(fileRow), { testid: 'files-table', caption: ctx.isAdmin ? 'Files' : 'My files', stack: true });
        tbody = t.tbody;
        replace(list, t.el);
      } else {
        for (const f of page.files) tbody.appendChild(fileRow(f));
        labelCells(tbody.closest('table'));
      }
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (e) {
      if (e.name === 'AbortError') return;
      showMessage(msg, e);
      if (!tbody) replace(list);
    }
  }

  const soon = throttle(() => load(true), 3000);
  ctx.cleanup(() => soon.cancel());
  ctx.onEvent((name, ev) => {
    if (name === 'lagged') {
      soon();
      return;
    }
    if (!ev || typeof ev !== 'object') return;
    const up = byJob.get(ev.id);
    if (up) up(ev);
    if (name === 'status' && up && TERMINAL.has(ev.status)) soon();
  });
  status.addEventListener('change', () => load(true));
  await load(true);
}

