// Admin sections: statistics (with the fleet and usage), task health, users.
import {
  h, append, replace, setText, fmtNum, fmtPct, fmtBytes, fmtUsd, fmtDuration, fmtAgo, fmtDay,
  fmtMinutes, timeEl, shortId, thisMonth, debounce, throttle, isNum,
} from './dom.js';
import { api, TERMINAL } from './api.js';
import {
  alertBox, badge, barWith, button, busy, card, checkbox, chip, confirmDialog, empty,
  field, formDialog, input, kv, labelCells, loading, messageEl, numberValue, openDialog, pageHeader, roleBadge, select,
  showMessage, stat, statusBadge, table, td, toast,
} from './ui.js';
import { tokensPanel } from './account.js';

// =============================================================================================
// Statistics

export async function renderStats(root, ctx) {
  const month = input({ type: 'month', id: 'stats-month', testid: 'stats-month', value: thisMonth() });
  const refresh = button('Refresh', () => { loadStats(); loadFleet(); }, { testid: 'stats-refresh' });
  const msg = messageEl('stats-error');
  const overview = h('div', { class: 'stack' }, loading());
  const gpus = h('div', { class: 'stack' });
  const systems = h('div', { class: 'stack' });
  const fleet = h('div', { class: 'stack' }, loading('Loading workers and queues…'));
  const usage = h('div', { class: 'stack' });
  append(root, [
    pageHeader('Statistics', refresh),
    msg,
    overview,
    h('h2', { class: 'section-title', text: 'GPUs' }), gpus,
    h('h2', { class: 'section-title', text: 'System resources' }), systems,
    h('h2', { class: 'section-title', text: 'Workers and queues' }), fleet,
    h('div', { class: 'section-title-row' },
      h('h2', { class: 'section-title', text: 'Usage and cost' }),
      field('Month', month, { inline: false })),
    usage,
  ]);

  const watched = new Set();
  let seq = 0;
  async function loadStats() {
    const my = ++seq;
    try {
      const s = await api('/v1/stats', { query: { month: month.value || undefined }, signal: ctx.signal });
      if (my !== seq) return;
      showMessage(msg, null);
      replace(overview, statsOverview(s));
      replace(gpus, gpuCards(s));
      replace(systems, systemCards(s));
      replace(usage, usageSection(s.usage));
      // Stale readings: the server asked a worker for fresh ones; show them once it is done.
      if (s.refresh_job && !watched.has(s.refresh_job)) {
        watched.add(s.refresh_job);
        ctx.watchJob(s.refresh_job, { onEnd: () => loadStats() });
      }
    } catch (e) {
      if (e.name === 'AbortError') return;
      showMessage(msg, e);
      if (!overview.querySelector('.stat')) replace(overview);
    }
  }

  async function loadFleet() {
    try {
      const [w, q] = await Promise.all([
        api('/v1/workers', { signal: ctx.signal }),
        api('/v1/queues', { signal: ctx.signal }),
      ]);
      replace(fleet, workersTable(w.workers), queuesTable(q.queues));
    } catch (e) {
      if (e.name === 'AbortError') return;
      replace(fleet, alertBox(e));
    }
  }

  month.addEventListener('change', () => loadStats());
  // Queue depths and running jobs follow the job events (at most every 3 s).
  const fleetSoon = throttle(() => loadFleet(), 3000);
  const statsSoon = throttle(() => loadStats(), 15000);
  ctx.cleanup(() => { fleetSoon.cancel(); statsSoon.cancel(); });
  ctx.onEvent((name, ev) => {
    if (name !== 'status' || !ev) return;
    fleetSoon();
    if (TERMINAL.has(ev.status)) statsSoon();
  });
  await Promise.all([loadStats(), loadFleet()]);
}

function statsOverview(s) {
  const u = s.users || {};
  const f = s.files || {};
  const t = s.tasks || {};
  const sp = s.speakers || {};
  return h('div', { class: 'grid grid-4' },
    card('Users',
      stat('accounts', fmtNum(u.total), `${fmtNum(u.recent)} new in ${s.window_days} days`, 'stat-users'),
      kv([['Users', fmtNum(u.users)], ['Admins', fmtNum(u.admins)], ['Super admins', fmtNum(u.super_admins)]])),
    card('Files',
      stat('files', fmtNum(f.total), `${fmtNum(f.recent_uploads)} uploaded in ${s.window_days} days`, 'stat-files'),
      kv([['Audio', fmtDuration(f.total_audio_seconds)], ['Transcript segments', fmtNum(f.segments)]])),
    card('Tasks',
      stat('jobs', fmtNum(t.total), `success rate ${isNum(t.success_rate) ? fmtPct(t.success_rate * 100, 1) : '—'}`, 'stat-tasks'),
      kv([
        ['Queued', fmtNum(t.queued)], ['Running', fmtNum(t.running)], ['Retrying', fmtNum(t.retrying)],
        ['Succeeded', fmtNum(t.succeeded)], ['Failed', fmtNum(t.failed)], ['Cancelled', fmtNum(t.cancelled)],
        ['Avg processing', fmtDuration(t.avg_processing_seconds)], ['Avg queue wait', fmtDuration(t.avg_queue_wait_seconds)],
      ])),
    card('Speakers',
      stat('speakers', fmtNum(sp.total), null, 'stat-speakers'),
      kv([['Files with speakers', fmtNum(sp.files_with_speakers)], ['Average per file', fmtNum(sp.average_per_file, 1)]])));
}

function readingsNote(w) {
  if (w.readings === 'offline') return alertBox(`Worker ${w.state}: no readings.`, 'warn');
  if (w.readings === 'stale') return alertBox('Readings expired; a fresh reading was requested and will show when it arrives.', 'warn');
  return null;
}

function gpuCards(s) {
  const workers = s.gpus || [];
  if (!workers.length) return empty('No worker has reported in the last hour.');
  const cards = [];
  for (const w of workers) {
    if (w.readings !== 'fresh') {
      cards.push(h('article', { class: ['gpu-card', `gpu-${w.readings}`], testid: 'gpu-card', dataset: { worker: w.worker, readings: w.readings } },
        h('div', { class: 'gpu-head' }, h('h3', { text: w.worker }), statusBadge(w.readings)),
        h('p', { class: 'muted', text: w.host }),
        readingsNote(w)));
      continue;
    }
    if (!w.gpus.length) {
      cards.push(h('article', { class: 'gpu-card gpu-none', testid: 'gpu-card', dataset: { worker: w.worker, readings: w.readings } },
        h('div', { class: 'gpu-head' }, h('h3', { text: w.worker }), statusBadge(w.state)),
        h('p', { class: 'muted', text: `${w.host} · no NVIDIA GPU` })));
      continue;
    }
    for (const g of w.gpus) {
      const used = g.memory_used_bytes;
      const total = g.memory_total_bytes;
      // A GPU that NVML could not read comes with zeros, which are not measurements.
      const read = g.healthy && total > 0;
      cards.push(h('article', { class: 'gpu-card', testid: 'gpu-card', dataset: { worker: w.worker, index: g.index, readings: w.readings } },
        h('div', { class: 'gpu-head' },
          h('h3', { text: g.name || `GPU ${g.index}` }),
          g.healthy ? badge('healthy', 'ok') : badge('unreadable', 'danger')),
        h('p', { class: 'muted', text: `${w.worker} · GPU ${g.index} · ${w.host}` }),
        h('div', { class: 'meter-row' },
          h('span', { class: 'meter-label', text: 'VRAM' }),
          read
            ? barWith(used, total, { label: `VRAM of GPU ${g.index} on ${w.worker}`, warnPct: 90 })
            : h('span', { class: 'muted', text: 'not read' }),
          h('span', { class: 'num meter-val', text: read ? `${fmtBytes(used)} / ${fmtBytes(total)}` : '—' })),
        kv([
          ['Free', read ? fmtBytes(g.memory_free_bytes) : '—'],
          ['Utilisation', isNum(g.utilization_percent) ? fmtPct(g.utilization_percent) : '—'],
          ['Temperature', isNum(g.temperature_celsius) ? `${g.temperature_celsius} °C` : '—'],
          ['Power', isNum(g.power_watts) ? `${fmtNum(g.power_watts, 0)} W` : '—'],
        ]),
        h('p', { class: 'muted small' }, 'Read ', timeEl(w.collected_at, true), w.source ? ` (${w.source.replace('_', ' ')})` : '')));
    }
  }
  return h('div', { class: 'grid grid-3' }, cards);
}

function systemBlock(title, sys, extra) {
  if (!sys) return card(title, extra, empty('No reading.'));
  const cores = h('div', { class: 'cores', 'aria-label': 'CPU usage per core' },
    (sys.cpu_per_core || []).map((p, i) => h('div', { class: 'core', title: `core ${i}: ${fmtPct(p)}` },
      h('span', { class: 'core-label num', text: `${i}` }),
      barWith(p, 100, { label: `core ${i}` }),
      h('span', { class: 'core-val num', text: fmtNum(p, 0) }))));
  const disks = (sys.disks || []).map((d) => h('div', { class: 'meter-row' },
    h('span', { class: 'meter-label', title: `${d.mount_point} (${d.file_system})`, text: d.mount_point }),
    barWith(d.used_bytes, d.total_bytes, { label: `disk ${d.mount_point}`, warnPct: 90 }),
    h('span', { class: 'num meter-val', text: `${fmtBytes(d.used_bytes)} / ${fmtBytes(d.total_bytes)}` })));
  return card(title,
    extra,
    h('div', { class: 'meter-row' },
      h('span', { class: 'meter-label', text: 'CPU' }),
      barWith(sys.cpu_percent, 100, { label: 'CPU, all cores' }),
      h('span', { class: 'num meter-val', text: fmtPct(sys.cpu_percent, 0) })),
    cores,
    h('div', { class: 'meter-row' },
      h('span', { class: 'meter-label', text: 'Memory' }),
      barWith(sys.memory_used_bytes, sys.memory_total_bytes, { label: 'memory', warnPct: 90 }),
      h('span', { class: 'num meter-val', text: `${fmtBytes(sys.memory_used_bytes)} / ${fmtBytes(sys.memory_total_bytes)}` })),
    disks,
    h('p', { class: 'muted small' }, `${sys.host} · sampled `, timeEl(sys.sampled_at, true)));
}

function systemCards(s) {
  const sys = s.system || {};
  const blocks = [systemBlock('Control plane', sys.control_plane)];
  for (const w of sys.workers || []) {
    const head = h('p', { class: 'muted' }, `${w.host} · `, statusBadge(w.state), ' ', w.readings !== 'fresh' ? statusBadge(w.readings) : null);
    if (w.readings !== 'fresh') blocks.push(card(`Worker ${w.worker}`, head, readingsNote(w)));
    else blocks.push(systemBlock(`Worker ${w.worker}`, w.system, head));
  }
  return h('div', { class: 'grid grid-2' }, blocks);
}

function workersTable(workers) {
  if (!workers.length) return empty('No worker has reported in the last hour.');
  const rows = workers.map((w) => h('tr', { testid: 'worker-row', dataset: { worker: w.name } },
    td(h('strong', { text: w.name })),
    td(w.host),
    td(statusBadge(w.state)),
    td(w.device),
    td(w.queues.join(', ')),
    td(`${fmtNum(w.running.length)} / ${fmtNum(w.concurrency)}`, 'num'),
    td(w.running.length ? h('span', { class: 'ids', title: w.running.join('\n') }, w.running.map(shortId).join(', ')) : '—'),
    td(fmtNum(w.gpu_count), 'num'),
    td((w.models || []).length
      ? h('ul', { class: 'plain' }, w.models.map((m) => h('li', { text: `${m.name} (${m.device}, ${fmtBytes(m.bytes)}${m.in_use ? `, ${m.in_use} in use` : ''})` })))
      : '—'),
    td(h('span', { title: w.last_heartbeat, text: fmtAgo(w.last_heartbeat) })),
    td(w.version)));
  return card('Workers', table(['Name', 'Host', 'State', 'Device', 'Queues', ['Running', 'num'], 'Jobs', ['GPUs', 'num'], 'Models', 'Heartbeat', 'Version'], rows, { testid: 'workers-table', caption: 'Workers' }).el);
}

function queuesTable(queues) {
  if (!queues.length) return card('Queues', empty('No queues yet.'));
  const rows = queues.map((q) => h('tr', { testid: 'queue-row', dataset: { queue: q.queue } },
    td(h('strong', { text: q.queue })),
    td(fmtNum(q.queued), 'num'),
    td(`${fmtNum(q.queued_by_priority.high)} / ${fmtNum(q.queued_by_priority.normal)} / ${fmtNum(q.queued_by_priority.low)}`, 'num'),
    td(fmtNum(q.running), 'num'),
    td(fmtNum(q.retrying), 'num'),
    td(fmtNum(q.failed), q.failed ? 'num text-danger' : 'num'),
    td(q.queued ? fmtDuration(q.oldest_age_seconds) : '—', 'num')));
  return card('Queues', table(['Queue', ['Depth', 'num'], ['High / normal / low', 'num'], ['Running', 'num'], ['Retrying', 'num'], ['Failed', 'num'], ['Oldest', 'num']], rows, { testid: 'queues-table', caption: 'Queues' }).el);
}

function usageSection(u) {
  if (!u) return empty('No usage data.');
  const conn = (u.by_connector || []).map((c) => h('tr', null,
    td(c.connector), td(fmtMinutes(c.minutes), 'num'), td(fmtNum(c.llm_tokens), 'num'), td(fmtUsd(c.cost_usd), 'num')));
  const users = (u.by_user || []).map((c) => h('tr', null,
    td(c.user_id ? (c.name || c.email || shortId(c.user_id)) : h('span', { class: 'muted', text: 'deleted user' })),
    td(c.email || '—'),
    td(fmtMinutes(c.minutes), 'num'), td(fmtNum(c.llm_tokens), 'num'), td(fmtUsd(c.cost_usd), 'num')));
  return h('div', { class: 'stack' },
    h('div', { class: 'chips', testid: 'usage-totals' },
      chip('Month', u.month),
      chip('Minutes', fmtNum(u.minutes, 1)),
      chip('LLM tokens', fmtNum(u.llm_tokens)),
      chip('Estimated cost', fmtUsd(u.cost_usd))),
    h('div', { class: 'grid grid-2' },
      card('By connector', conn.length
        ? table(['Connector', ['Minutes', 'num'], ['Tokens', 'num'], ['Cost', 'num']], conn, { testid: 'usage-by-connector', caption: 'Usage this month by connector' }).el
        : empty('No usage this month.')),
      card('By user', users.length
        ? table(['User', 'Email', ['Minutes', 'num'], ['Tokens', 'num'], ['Cost', 'num']], users, { testid: 'usage-by-user', caption: 'Usage this month by user' }).el
        : empty('No usage this month.'))));
}

// =============================================================================================
// Task health

export async function renderTasks(root, ctx) {
  const limit = select([['25', '25'], ['50', '50'], ['100', '100'], ['200', '200']], { id: 'tasks-limit', testid: 'tasks-limit', value: '50' });
  const refresh = button('Refresh', () => load(), { testid: 'tasks-refresh' });
  const msg = messageEl('tasks-error');
  const counts = h('div', { class: 'stack' }, loading());
  const stuck = h('div', { class: 'stack' });
  const recent = h('div', { class: 'stack' });
  append(root, [
    pageHeader('Task health', field('Jobs shown', limit), refresh),
    msg, counts,
    h('h2', { class: 'section-title', text: 'Stuck jobs' }), stuck,
    h('h2', { class: 'section-title', text: 'Recent jobs' }), recent,
  ]);
  const rows = new Map();

  async function act(job, action) {
    const verb = action === 'retry' ? 'Retry' : 'Cancel';
    const ok = await confirmDialog({
      title: `${verb} job?`,
      message: action === 'retry'
        ? `Run ${job.kind} job ${shortId(job.id)} again from its first attempt?`
        : `Cancel ${job.kind} job ${shortId(job.id)}? A queued job leaves the queue; a running one stops at its next checkpoint.`,
      confirmLabel: `${verb} job`,
      danger: action === 'cancel',
    });
    if (!ok) return;
    try {
      await api(`/v1/jobs/${encodeURIComponent(job.id)}/${action}`, { method: 'POST' });
      toast(action === 'retry' ? `Job ${shortId(job.id)} queued again.` : `Cancel requested for job ${shortId(job.id)}.`, 'ok');
      load();
    } catch (e) {
      toast(e, 'error');
    }
  }

  function actions(job) {
    const cell = h('div', { class: 'row-actions' });
    if (job.status === 'failed' || job.status === 'cancelled') {
      cell.appendChild(button('Retry', () => act(job, 'retry'), { testid: 'job-retry', kind: 'secondary btn-small' }));
    }
    if (job.status === 'queued' || job.status === 'running' || job.status === 'retrying') {
      cell.appendChild(button('Cancel', () => act(job, 'cancel'), { testid: 'job-cancel', kind: 'danger-outline btn-small' }));
    }
    return cell;
  }

  function jobRow(j) {
    const statusCell = h('td', null, statusBadge(j.status, 'job-status'));
    const prog = h('progress', { max: '100', class: 'mini-progress', 'aria-label': `progress of job ${shortId(j.id)}`, hidden: true });
    const progText = h('span', { class: 'num small' });
    const actionsCell = h('td', null, actions(j));
    const tr = h('tr', { testid: 'job-row', dataset: { jobId: j.id, status: j.status } },
      statusCell,
      td(h('span', { class: 'mono', title: j.id, text: shortId(j.id) })),
      td(j.kind),
      td(j.filename || (j.file_id ? h('span', { class: 'mono', title: j.file_id, text: shortId(j.file_id) }) : '—')),
      td(j.queue),
      td(fmtNum(j.attempts), 'num'),
      td(j.worker || '—'),
      td(fmtDuration(j.duration_seconds), 'num'),
      td(timeEl(j.created_at, true)),
      td(timeEl(j.started_at, true)),
      td(timeEl(j.finished_at, true)),
      td(j.error_code ? h('code', { text: j.error_code }) : '—'),
      h('td', { class: 'progress-cell' }, prog, progText),
      actionsCell);
    const job = { ...j };
    const update = (ev) => {
      if (ev.status && ev.status !== job.status) {
        job.status = ev.status;
        tr.dataset.status = ev.status;
        replace(statusCell, statusBadge(ev.status, 'job-status'));
        replace(actionsCell, actions(job));
      }
      if (ev.progress && ev.status === 'running') {
        prog.hidden = false;
        prog.value = ev.progress.percent;
        setText(progText, `${fmtNum(ev.progress.percent, 0)} %${isNum(ev.progress.eta_seconds) ? ` · ${fmtDuration(ev.progress.eta_seconds)}` : ''}`);
      } else if (TERMINAL.has(ev.status)) {
        prog.hidden = true;
        setText(progText, '');
      }
    };
    rows.set(j.id, update);
    return tr;
  }

  function stuckTable(list) {
    if (!list.length) return alertBox('No stuck jobs.', 'ok');
    const trs = list.map((j) => h('tr', { testid: 'stuck-row', dataset: { jobId: j.id } },
      td(h('span', { class: 'mono', title: j.id, text: shortId(j.id) })),
      td(j.kind), td(j.queue), td(j.worker || '—'),
      td(j.file_id ? h('span', { class: 'mono', title: j.file_id, text: shortId(j.file_id) }) : '—'),
      td(fmtDuration(j.age_seconds), 'num'),
      td(badge(j.reason.replace(/_/g, ' '), 'danger')),
      td(fmtDuration(j.max_runtime_seconds), 'num'),
      td(timeEl(j.lease_deadline, true)),
      td(button('Cancel', () => act({ ...j, status: 'running' }, 'cancel'), { testid: 'stuck-cancel', kind: 'danger-outline btn-small' }))));
    return table(['Job', 'Kind', 'Queue', 'Worker', 'File', ['Age', 'num'], 'Reason', ['Max run time', 'num'], 'Lease until', ''], trs, { testid: 'stuck-table', caption: 'Stuck jobs', stack: true }).el;
  }

  let seq = 0;
  async function load() {
    const my = ++seq;
    try {
      const t = await api('/v1/tasks/health', { query: { limit: limit.value }, signal: ctx.signal });
      if (my !== seq) return;
      showMessage(msg, null);
      const c = t.counts;
      replace(counts, h('div', { class: 'tiles', testid: 'task-counts' },
        stat('queued', fmtNum(c.queued)), stat('running', fmtNum(c.running)), stat('retrying', fmtNum(c.retrying)),
        stat('succeeded', fmtNum(c.succeeded)), stat('failed', fmtNum(c.failed)), stat('cancelled', fmtNum(c.cancelled)),
        stat('success rate', isNum(c.success_rate) ? fmtPct(c.success_rate * 100, 1) : '—', null, 'task-success-rate'),
        stat('avg processing', fmtDuration(c.avg_processing_seconds), null, 'task-avg-processing'),
        stat('avg queue wait', fmtDuration(c.avg_queue_wait_seconds))));
      replace(stuck, stuckTable(t.stuck));
      rows.clear();
      if (!t.jobs.length) {
        replace(recent, empty('No jobs yet.'));
      } else {
        replace(recent, table(
          ['Status', 'Job', 'Kind', 'File', 'Queue', ['Attempts', 'num'], 'Worker', ['Duration', 'num'], 'Created', 'Started', 'Finished', 'Error', 'Progress', ''],
          t.jobs.map(jobRow), { testid: 'jobs-table', caption: 'Recent jobs', stack: true }).el);
      }
    } catch (e) {
      if (e.name === 'AbortError') return;
      showMessage(msg, e);
      if (!counts.querySelector('.stat')) replace(counts);
    }
  }

  const soon = throttle(() => load(), 3000);
  ctx.cleanup(() => soon.cancel());
  ctx.onEvent((name, ev) => {
    if (name === 'lagged') {
      soon();
      return;
    }
    if (!ev || typeof ev !== 'object') return;
    const update = rows.get(ev.id);
    if (update) update(ev);
    if (name === 'status' && (TERMINAL.has(ev.status) || (!update && ev.status === 'queued'))) soon();
  });
  limit.addEventListener('change', () => load());
  await load();
}

// =============================================================================================
// Users

const MIN_MINUTES = 10;
const MIN_TOKENS = 100000;
const TOKEN_STEP = 10000;
const MSG_MINUTES = '`transcription_budget_minutes` must be at least 10 (or null: unlimited)';
const MSG_TOKENS = '`token_budget` must be at least 100000 in steps of 10000 (or null: unlimited)';
const MSG_NAME = '`name` must be 1-100 characters without control characters';

function validEmail(email) {
  if (email.length < 3 || email.length > 254 || /\s/.test(email)) return false;
  const at = email.indexOf('@');
  if (at <= 0) return false;
  const domain = email.slice(at + 1);
  return !domain.includes('@') && domain.includes('.') && !domain.startsWith('.') && !domain.endsWith('.');
}

class FieldError extends Error {
  constructor(control, message) {
    super(message);
    this.control = control;
    this.code = 'invalid_input';
  }
}

/** The budget fields' values, checked as the server checks them. */
export function budgetValues(minutesEl, tokensEl) {
  const minutes = numberValue(minutesEl);
  if (minutes !== null && (!Number.isInteger(minutes) || minutes < MIN_MINUTES)) throw new FieldError(minutesEl, MSG_MINUTES);
  const tokens = numberValue(tokensEl);
  if (tokens !== null && (!Number.isInteger(tokens) || tokens < MIN_TOKENS || tokens % TOKEN_STEP !== 0)) throw new FieldError(tokensEl, MSG_TOKENS);
  return { minutes, tokens };
}

function usageCell(usedRaw, budget, warnPct, digits, testid) {
  const used = isNum(usedRaw) ? usedRaw : 0;
  const pct = budget ? (used / budget) * 100 : null;
  const cls = ['num', pct !== null && pct >= 100 ? 'text-danger' : pct !== null && pct >= warnPct ? 'text-warn' : ''];
  return h('td', { class: cls, testid, dataset: { percent: pct === null ? undefined : Math.round(pct) }, title: pct === null ? 'no budget (unlimited)' : `${fmtNum(pct, 0)} % of the monthly budget` },
    h('span', { class: 'cell-stack' },
      h('span', { class: 'cell-main', text: fmtNum(used, digits) }),
      h('span', { class: 'budget-of', text: budget ? `of ${fmtNum(budget)}` : 'no limit' })));
}

export async function renderUsers(root, ctx) {
  const me = ctx.me;
  const filter = input({ type: 'search', id: 'users-filter', testid: 'users-filter', placeholder: 'Name or email', autocomplete: 'off', maxlength: '200' });
  const roleFilter = select([['', 'All roles'], ['user', 'Users'], ['admin', 'Admins'], ['super_admin', 'Super admins']], { id: 'users-role', testid: 'users-role' });
  const addBtn = button('Add user', () => userDialog(null), { kind: 'primary', testid: 'user-add', id: 'user-add' });
  const msg = messageEl('users-error');
  const countEl = h('p', { class: 'muted small', testid: 'users-count', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const tbl = h('table', { class: 'table stackable', testid: 'users-table' },
    h('caption', { class: 'sr-only', text: 'Users; minutes, tokens and cost are this month\u2019s' }),
    h('thead', null, h('tr', null,
      ['User', ['Recordings', 'num'], ['Storage', 'num'], ['Minutes', 'num'], ['Tokens', 'num'], ['Cost', 'num'], 'Created', 'Actions']
        .map((c) => (Array.isArray(c) ? h('th', { scope: 'col', class: c[1], text: c[0] }) : h('th', { scope: 'col', text: c }))))),
    tbody);
  const more = button('Load more', () => load(false), { testid: 'users-more' });
  more.hidden = true;
  append(root, [
    pageHeader('Users', addBtn),
    h('div', { class: 'toolbar' }, field('Search users', filter), field('Role', roleFilter)),
    msg,
    h('p', { class: 'muted small', text: 'Minutes, LLM tokens and cost are this month\u2019s, against each user\u2019s budget where one is set (warning colour from the budgets\u2019 warning share).' }),
    h('div', { class: 'table-wrap' }, tbl),
    countEl,
    h('div', { class: 'center' }, more),
  ]);

  let warnPct = 80;
  api('/v1/settings/budgets', { signal: ctx.signal }).then((b) => { warnPct = b.warn_percent || 80; }).catch(() => {});

  let cursor = null;
  let shown = 0;
  let seq = 0;
  let inflight = null;

  async function load(reset = true) {
    const my = ++seq;
    if (inflight) inflight.abort();
    const ac = new AbortController();
    inflight = ac;
    ctx.signal.addEventListener('abort', () => ac.abort(), { once: true });
    try {
      const page = await api('/v1/users', {
        query: { q: filter.value.trim() || undefined, role: roleFilter.value || undefined, limit: 50, cursor: reset ? undefined : cursor },
        signal: ac.signal,
      });
      if (my !== seq) return;
      showMessage(msg, null);
      if (reset) {
        replace(tbody);
        shown = 0;
      }
      for (const u of page.users) tbody.appendChild(userRow(u));
      labelCells(tbl);
      shown += page.users.length;
      cursor = page.next_cursor;
      more.hidden = !cursor;
      if (reset && !page.users.length) {
        tbody.appendChild(h('tr', null, h('td', { colspan: '8', class: 'muted center', text: filter.value.trim() ? 'No user matches this search.' : 'No users.' })));
      }
      setText(countEl, `${fmtNum(shown)} user${shown === 1 ? '' : 's'} shown${cursor ? ' (more available)' : ''}`);
    } catch (e) {
      if (e.name === 'AbortError') return;
      showMessage(msg, e);
    } finally {
      if (inflight === ac) inflight = null;
    }
  }

  function canManage(u) {
    return !(u.role === 'super_admin' && me.role !== 'super_admin');
  }

  function userRow(u) {
    const self = u.id === me.id;
    const usage = u.usage || {};
    const nameCell = h('td', { class: 'user-cell' }, h('span', { class: 'cell-stack cell-left' },
      h('span', null,
        h('span', { class: 'strong', testid: 'user-name-text', text: u.name }),
        ' ', roleBadge(u.role),
        self ? h('span', null, ' ', badge('Current user', 'accent', 'current-user')) : null,
        u.disabled ? h('span', null, ' ', badge('Disabled', 'danger', 'user-disabled-badge')) : null,
        u.locked_until ? h('span', { title: `Sign-in locked until ${u.locked_until}` }, ' ', badge('Locked', 'danger', 'user-locked-badge')) : null,
        u.mfa_enabled ? h('span', { title: 'Two-factor sign-in is on' }, ' ', badge('2FA', 'muted', 'user-mfa-badge')) : null,
        !u.email ? h('span', null, ' ', badge('Service account', 'muted')) : null),
      h('span', { class: 'muted small', testid: 'user-email-text', text: u.email || 'no email' })));
    const acts = h('div', { class: 'row-actions' });
    const menu = h('div', { class: 'more-menu' });
    if (!canManage(u)) {
      acts.appendChild(h('span', { class: 'muted small', text: 'Managed by super admins' }));
    } else {
      acts.appendChild(button('Edit', () => userDialog(u), { testid: 'user-edit', kind: 'secondary btn-small', ariaLabel: `Edit ${u.name}` }));
      if (!self) acts.appendChild(button('Delete', () => remove(u), { testid: 'user-delete', kind: 'danger-outline btn-small', ariaLabel: `Delete ${u.name}` }));
      acts.appendChild(h('details', { class: 'more' },
        h('summary', { class: 'btn btn-secondary btn-small', testid: 'user-more', 'aria-label': `More actions for ${u.name}`, text: 'More' }),
        menu));
      const share = h('button', {
        type: 'button', class: 'btn btn-secondary btn-small', testid: 'user-sharing', 'aria-pressed': String(Boolean(u.public_sharing)),
        title: 'Whether this user may make public links to their transcripts', text: u.public_sharing ? 'Sharing on' : 'Sharing off',
      });
      share.addEventListener('click', () => busy(share, async () => {
        try {
          await api(`/v1/users/${u.id}`, { method: 'PATCH', body: { public_sharing: !u.public_sharing } });
          u.public_sharing = !u.public_sharing;
          share.setAttribute('aria-pressed', String(u.public_sharing));
          share.textContent = u.public_sharing ? 'Sharing on' : 'Sharing off';
          toast(`Public sharing ${u.public_sharing ? 'allowed' : 'withdrawn'} for ${u.name}.`, 'ok');
        } catch (e) {
          toast(e, 'error');
        }
      }));
      menu.appendChild(share);
      if (!self) menu.appendChild(button('Reset password', () => passwordDialog(u), { testid: 'user-password-reset', kind: 'secondary btn-small', ariaLabel: `Reset the password of ${u.name}` }));
      menu.appendChild(button('Recover files', () => recover(u), { testid: 'user-recover', kind: 'secondary btn-small', ariaLabel: `Recover the files of ${u.name}` }));
      if (!self && u.locked_until) menu.appendChild(button('Unlock', () => unlock(u), { testid: 'user-unlock', kind: 'secondary btn-small', ariaLabel: `Unlock ${u.name}` }));
      menu.appendChild(button('Tokens', () => tokensDialog(u), { testid: 'user-tokens', kind: 'secondary btn-small', ariaLabel: `Tokens of ${u.name}` }));
    }
    return h('tr', { testid: 'user-row', dataset: { email: u.email || '', userId: u.id, role: u.role, self: self ? 'true' : undefined } },
      nameCell,
      td(fmtNum(usage.recordings), 'num'),
      td(fmtBytes(usage.storage_bytes), 'num'),
      usageCell(usage.minutes_this_month, u.transcription_budget_minutes, warnPct, 1, 'user-minutes'),
      usageCell(usage.llm_tokens_this_month, u.token_budget, warnPct, 0, 'user-tokens-used'),
      td(fmtUsd(usage.cost_usd_this_month), 'num'),
      td(h('span', { title: u.created_at, text: fmtDay(u.created_at) }), 'nowrap'),
      h('td', null, acts));
  }

  function userDialog(u) {
    const editing = Boolean(u);
    const self = editing && u.id === me.id;
    const name = input({ id: 'user-name', testid: 'user-name', required: true, maxlength: '100', autocomplete: 'off', value: u?.name ?? '' });
    const email = input({ id: 'user-email', testid: 'user-email', type: 'email', required: !editing, autocomplete: 'off', value: u?.email ?? '' });
    const password = input({ id: 'user-password', testid: 'user-password', type: 'password', autocomplete: 'new-password', required: true });
    const roles = [['user', 'User'], ['admin', 'Admin']];
    if (me.role === 'super_admin') roles.push(['super_admin', 'Super admin']);
    const role = select(roles, { id: 'user-role', testid: 'user-role', value: u?.role ?? 'user' });
    const sharing = checkbox({ id: 'user-public-sharing', testid: 'user-public-sharing', checked: Boolean(u?.public_sharing) });
    const disabled = checkbox({ id: 'user-disabled', testid: 'user-disabled', checked: Boolean(u?.disabled) });
    const minutes = input({ id: 'user-budget-minutes', testid: 'user-budget-minutes', type: 'number', min: String(MIN_MINUTES), step: '1', inputmode: 'numeric', placeholder: 'Unlimited', value: u?.transcription_budget_minutes ?? '' });
    const tokens = input({ id: 'user-budget-tokens', testid: 'user-budget-tokens', type: 'number', min: String(MIN_TOKENS), step: String(TOKEN_STEP), inputmode: 'numeric', placeholder: 'Unlimited', value: u?.token_budget ?? '' });
    const language = input({ id: 'user-language', testid: 'user-language', maxlength: '16', placeholder: 'e.g. en', autocomplete: 'off', value: u?.default_language ?? '' });
    const prompt = h('textarea', { id: 'user-prompt', testid: 'user-prompt', rows: '3', value: u?.default_prompt ?? '' });
    const fields = [
      field('Name', name),
      field('Email', email, { hint: editing ? 'Used to sign in. Empty: no email (a service account).' : 'Used to sign in; must be unique.' }),
    ];
    if (!editing) fields.push(field('Password', password, { hint: 'At least 8 characters (the password policy may ask for more). The user should change it after signing in.' }));
    if (!self) fields.push(field('Role', role));
    else fields.push(h('p', { class: 'muted small field-wide', text: 'This is your own account: its role and disabled flag cannot be changed here.' }));
    fields.push(field('May make public links to transcripts', sharing, { inline: true }));
    if (editing && !self) fields.push(field('Disabled (cannot sign in; tokens stop working)', disabled, { inline: true }));
    fields.push(
      field('Transcription budget (minutes per month)', minutes, { hint: 'At least 10. Empty: unlimited.' }),
      field('LLM token budget (per month)', tokens, { hint: 'At least 100,000, in steps of 10,000. Empty: unlimited.' }),
      field('Default language', language, { hint: 'ISO 639-1 code for transcriptions that name none.' }),
      field('Default prompt', prompt, { wide: true, hint: 'Used for transcriptions that give none.' }),
    );
    formDialog({
      title: editing ? `Edit ${u.name}` : 'Add user',
      fields,
      submitLabel: editing ? 'Save changes' : 'Add user',
      testid: 'user-form',
      submitTestid: 'user-submit',
      wide: true,
      onSubmit: async (form) => {
        for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
        try {
          const n = name.value.trim();
          // eslint-disable-next-line no-control-regex
          if (!n || n.length > 100 || /[\u0000-\u001f\u007f]/.test(n)) throw new FieldError(name, MSG_NAME);
          const em = email.value.trim();
          if (!editing && !em) throw new FieldError(email, 'Enter an email address: the user signs in with it.');
          if (em && !validEmail(em)) throw new FieldError(email, `\`email\` "${em}" is not an email address`);
          if (!editing && password.value.length < 8) throw new FieldError(password, 'the password must be at least 8 characters');
          const { minutes: m, tokens: t } = budgetValues(minutes, tokens);
          const lang = language.value.trim() || null;
          const pr = prompt.value.trim() ? prompt.value : null;
          if (!editing) {
            const created = await api('/v1/users', {
              method: 'POST',
              body: {
                email: em, name: n, role: role.value, password: password.value, public_sharing: sharing.checked,
                default_language: lang, default_prompt: pr, transcription_budget_minutes: m, token_budget: t,
              },
            });
            toast(`Added ${created.name} (${created.email}).`, 'ok');
          } else {
            const patch = {};
            if (n !== u.name) patch.name = n;
            if ((em || null) !== (u.email || null)) patch.email = em || null;
            if (!self && role.value !== u.role) patch.role = role.value;
            if (sharing.checked !== Boolean(u.public_sharing)) patch.public_sharing = sharing.checked;
            if (!self && disabled.checked !== Boolean(u.disabled)) patch.disabled = disabled.checked;
            if (m !== (u.transcription_budget_minutes ?? null)) patch.transcription_budget_minutes = m;
            if (t !== (u.token_budget ?? null)) patch.token_budget = t;
            if (lang !== (u.default_language ?? null)) patch.default_language = lang;
            if (pr !== (u.default_prompt ?? null)) patch.default_prompt = pr;
            if (!Object.keys(patch).length) return true;
            if (patch.role && patch.role !== u.role) {
              const ok = await confirmDialog({
                title: 'Change role?',
                message: `Change ${u.name}'s role from ${u.role.replace('_', ' ')} to ${patch.role.replace('_', ' ')}? It applies to their next request.`,
                confirmLabel: 'Change role',
              });
              if (!ok) return false;
            }
            await api(`/v1/users/${u.id}`, { method: 'PATCH', body: patch });
            toast(`Saved ${n}.`, 'ok');
          }
          load(true);
          return true;
        } catch (e) {
          if (e instanceof FieldError) {
            e.control.setAttribute('aria-invalid', 'true');
            e.control.focus();
          }
          throw e;
        }
      },
    });
  }

  function passwordDialog(u) {
    const pw = input({ id: 'reset-password', testid: 'reset-password', type: 'password', autocomplete: 'new-password', required: true });
    const confirm = input({ id: 'reset-confirm', testid: 'reset-confirm', type: 'password', autocomplete: 'new-password', required: true });
    formDialog({
      title: `Reset the password of ${u.name}`,
      fields: [
        h('input', { type: 'text', autocomplete: 'username', value: u.email || '', hidden: true, readonly: true, tabindex: '-1', 'aria-hidden': 'true' }),
        field('New password', pw, { hint: 'At least 8 characters; the password policy applies.' }),
        field('Repeat the new password', confirm),
      ],
      submitLabel: 'Set password',
      testid: 'reset-form',
      submitTestid: 'reset-submit',
      onSubmit: async () => {
        if (pw.value.length < 8) throw Object.assign(new Error('the password must be at least 8 characters'), { code: 'weak_password' });
        if (pw.value !== confirm.value) throw Object.assign(new Error('the password and its confirmation differ'), { code: 'password_mismatch' });
        await api(`/v1/users/${u.id}/password`, { method: 'POST', body: { password: pw.value, confirm: confirm.value } });
        toast(`New password set for ${u.name}.`, 'ok');
      },
    });
  }

  async function recover(u) {
    const ok = await confirmDialog({
      title: `Recover the files of ${u.name}?`,
      message: 'Their failed or cancelled newest transcriptions and diarizations run again; stuck ones are cancelled and submitted anew.',
      confirmLabel: 'Recover files',
    });
    if (!ok) return;
    try {
      const r = await api(`/v1/users/${u.id}/recover`, { method: 'POST' });
      toast(`Recovery of ${u.name}'s files: ${r.failed_requeued} failed and ${r.stuck_requeued} stuck job(s) queued again; ${r.running_left} still running.`, 'ok');
    } catch (e) {
      toast(e, 'error');
    }
  }

  async function unlock(u) {
    const ok = await confirmDialog({
      title: `Unlock ${u.name}?`,
      message: 'Lifts a lockout after too many failed sign-ins, so they can sign in again at once.',
      confirmLabel: 'Unlock',
    });
    if (!ok) return;
    try {
      await api(`/v1/users/${u.id}/unlock`, { method: 'POST' });
      toast(`${u.name} is unlocked.`, 'ok');
    } catch (e) {
      toast(e, 'error');
    }
  }

  async function remove(u) {
    const ok = await confirmDialog({
      title: `Delete ${u.name}?`,
      message: `The account ${u.email || u.name} and all its recordings, transcripts, speakers, voiceprints and tokens are deleted for good. Usage records stay, detached from the person. This cannot be undone.`,
      confirmLabel: 'Delete user',
      danger: true,
      requireCheck: `I understand that ${u.name}'s files are deleted for good`,
    });
    if (!ok) return;
    try {
      const job = await api(`/v1/users/${u.id}`, { method: 'DELETE' });
      toast(`${u.name} is deleted; their files are being removed (job ${shortId(job.id)}).`, 'ok');
      ctx.watchJob(job.id, {
        onEvent: (name, ev) => {
          if (name === 'status' && ev.status === 'failed') toast(`Removing ${u.name}'s files failed (${ev.error_code || 'error'}); deleting again resumes it.`, 'error');
        },
      });
      load(true);
    } catch (e) {
      toast(e, 'error');
    }
  }

  function tokensDialog(u) {
    const panel = tokensPanel({
      listPath: `/v1/users/${u.id}/tokens`,
      createPath: `/v1/users/${u.id}/tokens`,
      canDelegate: true,
      canRevoke: false,
      testid: 'user-tokens-panel',
    });
    openDialog({ title: `Tokens of ${u.name}`, body: [panel], wide: true, testid: 'tokens-dialog' });
  }

  const typed = debounce(() => load(true), 250);
  ctx.cleanup(() => typed.cancel());
  filter.addEventListener('input', typed);
  roleFilter.addEventListener('change', () => load(true));
  await load(true);
}
