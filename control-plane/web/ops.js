// Operations sections: search & indexing, maintenance (integrity, embedding consistency and
// migration), retention, settings (retry, budgets, prices), authentication settings, audit log.
import {
  h, append, replace, setText, fmtNum, fmtBytes, fmtDuration, fmtDate, timeEl, shortId, utcDay, isNum,
} from './dom.js';
import { api, download, TERMINAL } from './api.js';
import {
  alertBox, badge, button, busy, card, checkbox, chip, confirmDialog, empty, enable, field, input, jobProgress,
  kv, labelCells, loading, messageEl, numberValue, openDialog, pageHeader, select, showMessage, statusBadge, table,
  td, toast, usageBar,
} from './ui.js';

function isRunning(view) {
  return Boolean(view && view.job && !TERMINAL.has(view.job.status));
}

function pretty(key) {
  const s = key.replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** A section run's report: its plain fields as a list (dates and byte counts formatted). */
function reportList(report, skip = []) {
  if (!report || typeof report !== 'object') return null;
  const pairs = [];
  for (const [k, v] of Object.entries(report)) {
    if (skip.includes(k) || v === null || typeof v === 'object') continue;
    let shown = v;
    if (typeof v === 'boolean') shown = v ? 'yes' : 'no';
    else if (k.endsWith('bytes') || k === 'bytes_freed') shown = fmtBytes(v);
    else if (k === 'seconds') shown = fmtDuration(v);
    else if (typeof v === 'number') shown = fmtNum(v, Number.isInteger(v) ? 0 : 2);
    else if (typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v)) shown = fmtDate(v, true);
    pairs.push([pretty(k), String(shown)]);
  }
  if (report.error && typeof report.error === 'object') pairs.push(['Error', `${report.error.message} (${report.error.code})`]);
  return pairs.length ? kv(pairs, 'kv-compact') : null;
}

function runSummary(view) {
  if (!view) return empty('Never run.');
  return h('p', { class: 'small muted' },
    'Last run: ', statusBadge(view.state), ' · started ', timeEl(view.started_at, true),
    view.finished_at ? h('span', null, ' · finished ', timeEl(view.finished_at, true)) : null);
}

/**
 * Follows a section's job: the progress widget moves with the job's events; onEnd runs once
 * the job ends (to read the section's final report).
 */
function sectionTracker(ctx, progress, onEnd) {
  let watching = null;
  return (view) => {
    const job = view && view.job;
    if (!view) {
      progress.update(null, null);
      return;
    }
    progress.update(job ? job.progress : null, isRunning(view) ? job.status : view.state);
    if (isRunning(view) && watching !== job.id) {
      watching = job.id;
      ctx.watchJob(job.id, {
        onEvent: (name, ev) => {
          if (!ev || typeof ev !== 'object') return;
          if (name === 'stopped') progress.update(ev.progress, 'stopping');
          else if (name === 'status' || name === 'progress') progress.update(ev.progress, ev.status);
        },
        onEnd: () => {
          watching = null;
          onEnd();
        },
      });
    }
  };
}

async function post(path, body) {
  return api(path, { method: 'POST', body: body === undefined ? {} : body });
}

// =============================================================================================
// Search & indexing

/** Asks a running section to stop: `btn` busy meanwhile, a toast either way, the section
 * reloaded after a refusal (its events report the stop itself). */
async function stopSection(btn, path, text, load) {
  await busy(btn, async () => {
    try {
      await post(path);
      toast(text, 'info');
    } catch (e) {
      toast(e, 'error');
      load();
    }
  });
}

export async function renderSearch(root, ctx) {
  const msg = messageEl('search-error');
  const chips = h('div', { class: 'chips', testid: 'search-chips' });
  const problems = h('div');
  const progress = jobProgress('reindex-progress', 'Re-index progress');
  const runInfo = h('div');
  const report = h('div');
  const all = button('Re-index all', () => start('all'), { kind: 'primary', testid: 'reindex-all', id: 'reindex-button', disabled: true });
  const pending = button('Re-index pending', () => start('pending'), { testid: 'reindex-pending', disabled: true });
  const stop = button('Stop', () => stopRun(), { kind: 'danger-outline', testid: 'reindex-stop', disabled: true });
  // Filled from GET /v1/settings/search: the models the server accepts.
  const modelSel = select([], { id: 'search-model', testid: 'search-model-select' });
  const modelInfo = h('p', { class: 'small muted', testid: 'search-model-info' });
  let models = [];
  function showModelInfo() {
    const m = models.find((x) => x.name === modelSel.value);
    setText(modelInfo, m ? m.description : '');
  }
  modelSel.addEventListener('change', showModelInfo);
  const modelSave = button('Change model', () => changeModel(), { testid: 'search-model-save', disabled: true });
  const modelMsg = messageEl('search-model-error');
  append(root, [
    pageHeader('Search & indexing', button('Refresh', () => load(), { testid: 'search-refresh' })),
    msg, chips, problems,
    card('Re-index',
      h('p', { class: 'small muted', text: 'Re-index all rebuilds the whole transcript index; re-index pending only indexes files that are not indexed yet.' }),
      h('div', { class: 'row-actions' }, all, pending, stop),
      progress.el, runInfo, report),
    card('Embedding model',
      h('p', { class: 'small muted', text: 'The model transcript chunks and queries are embedded with. Changing it re-embeds every file: a full re-index starts at once.' }),
      h('div', { class: 'inline-form' }, field('Model', modelSel), h('div', { class: 'field field-button' }, modelSave)),
      modelInfo, modelMsg),
  ]);
  let current = null;
  const track = sectionTracker(ctx, progress, () => load());

  function render(s) {
    current = s;
    const c = s.counts;
    replace(chips,
      chip('Indexed', `${fmtNum(c.indexed)} / ${fmtNum(c.total)}`, c.indexed === c.total ? 'ok' : 'warn', 'search-indexed'),
      chip('Model', s.model, 'muted', 'search-model'),
      chip('Health', s.health === 'ok' ? 'OK' : 'Needs repair', s.health === 'ok' ? 'ok' : 'danger', 'search-health'),
      chip('Pending', fmtNum(c.pending), c.pending ? 'warn' : 'ok', 'search-pending'),
      chip('Chunks', isNum(s.index_chunks) ? `${fmtNum(s.index_chunks)} indexed / ${fmtNum(c.chunks)} expected` : fmtNum(c.chunks)));
    replace(problems, s.problems.length
      ? alertBox(`Needs repair: ${s.problems.join('; ')}`, 'warn', 'search-problems')
      : null);
    const running = isRunning(s.reindex);
    enable(all, !running);
    enable(pending, !running);
    enable(stop, running);
    track(s.reindex);
    replace(runInfo, runSummary(s.reindex));
    replace(report, s.reindex && !running ? reportList(s.reindex.report) : null);
  }

  async function load() {
    try {
      const [s, settings] = await Promise.all([
        api('/v1/admin/search', { signal: ctx.signal }),
        api('/v1/settings/search', { signal: ctx.signal }),
      ]);
      showMessage(msg, null);
      models = settings.models || [];
      replace(modelSel, models.map((m) => h('option', {
        value: m.name,
        text: m.default ? `${m.name} (default)` : m.name,
        title: `${m.description} (${m.dimension}-d)`,
      })));
      if (!models.some((m) => m.name === settings.model)) {
        modelSel.appendChild(h('option', { value: settings.model, text: `${settings.model} (no longer offered)` }));
      }
      modelSel.value = settings.model;
      modelSel.dataset.current = settings.model;
      showModelInfo();
      enable(modelSave, models.length > 0);
      render(s);
    } catch (e) {
      if (e.name === 'AbortError') return;
      showMessage(msg, e);
    }
  }

  async function start(mode) {
    if (mode === 'all') {
      const ok = await confirmDialog({
        title: 'Re-index everything?',
        message: 'Every file\u2019s transcript is chunked and embedded again. Search keeps answering from the current index meanwhile.',
        confirmLabel: 'Re-index all',
      });
      if (!ok) return;
    }
    await busy(mode === 'all' ? all : pending, async () => {
      try {
        const view = await post('/v1/admin/search/reindex', { mode });
        toast(`Re-index (${mode}) started.`, 'ok');
        if (current) render({ ...current, reindex: view });
      } catch (e) {
        toast(e, 'error');
        load();
      }
    });
  }

  const stopRun = () => stopSection(stop, '/v1/admin/search/reindex/stop', 'Stopping the re-index…', load);

  async function changeModel() {
    const model = modelSel.value;
    const was = modelSel.dataset.current;
    showMessage(modelMsg, null);
    if (model === was) {
      showMessage(modelMsg, `${model} is the model already.`, 'info');
      return;
    }
    const ok = await confirmDialog({
      title: 'Change the embedding model?',
      message: `Changing from ${was} to ${model} re-embeds every file: a full re-index starts now and search quality is mixed until it finishes.`,
      confirmLabel: 'Change and re-index',
      danger: true,
    });
    if (!ok) {
      modelSel.value = was;
      return;
    }
    await busy(modelSave, async () => {
      try {
        const r = await api('/v1/settings/search', { method: 'PUT', body: { model, confirm: true } });
        modelSel.dataset.current = r.model;
        toast(`Model changed to ${r.model}; a full re-index started.`, 'ok');
        load();
      } catch (e) {
        showMessage(modelMsg, e);
      }
    });
  }

  await load();
}

// =============================================================================================
// Maintenance

export async function renderMaintenance(root, ctx) {
  const integrity = h('div', null, loading());
  const consistency = h('div', null, loading());
  const migration = h('div', null, loading());
  append(root, [
    pageHeader('Maintenance'),
    h('h2', { class: 'section-title', text: 'Data integrity' }), integrity,
    h('h2', { class: 'section-title', text: 'Embedding consistency' }), consistency,
    h('h2', { class: 'section-title', text: 'Embedding migration (v3 → v4)' }), migration,
  ]);
  await Promise.all([
    integrityPanel(integrity, ctx),
    consistencyPanel(consistency, ctx),
    migrationPanel(migration, ctx),
  ]);
}

async function integrityPanel(box, ctx) {
  const msg = messageEl('integrity-error');
  const overview = h('div');
  const progress = jobProgress('integrity-progress', 'Integrity check progress');
  const dry = checkbox({ id: 'integrity-dry-run', testid: 'integrity-dry-run' });
  const run = button('Run check', () => start(), { kind: 'primary', testid: 'integrity-check', disabled: true });
  const stop = button('Stop', () => stopRun(), { kind: 'danger-outline', testid: 'integrity-stop', disabled: true });
  const result = h('div');
  replace(box, h('div', { class: 'stack' },
    msg, overview,
    card('Integrity check',
      h('p', { class: 'small muted', text: 'Scans each index for orphaned documents (no matching database row) and deletes them. A dry run only reports them.' }),
      h('div', { class: 'row-actions' }, field('Dry run (report only)', dry, { inline: true }), run, stop),
      progress.el, result)));
  const track = sectionTracker(ctx, progress, () => load());

  function checkReport(view) {
    if (!view) return empty('No check has run yet.');
    const r = view.report || {};
    const rows = (r.indices || []).map((i) => h('tr', null,
      td(i.index), td(fmtNum(i.docs), 'num'), td(fmtNum(i.scanned), 'num'),
      td(fmtNum(i.orphans), i.orphans ? 'num text-warn' : 'num'), td(fmtNum(i.cleaned), 'num')));
    return h('div', { class: 'stack' },
      runSummary(view),
      r.dry_run ? badge('dry run: nothing deleted', 'info') : null,
      rows.length ? table(['Index', ['Documents', 'num'], ['Scanned', 'num'], ['Orphans', 'num'], ['Cleaned', 'num']], [
        ...rows,
        h('tr', { class: 'total-row' }, td('Total'), td(''), td(''), td(fmtNum(r.orphans), 'num'), td(fmtNum(r.cleaned), 'num')),
      ], { testid: 'integrity-report', caption: 'Integrity check by index' }).el : reportList(r));
  }

  async function load() {
    try {
      const o = await api('/v1/admin/integrity', { signal: ctx.signal });
      showMessage(msg, null);
      const refs = o.references || {};
      const vp = Object.entries(refs.voiceprints || {}).map(([p, n]) => [`Voiceprints ${p}`, fmtNum(n)]);
      replace(overview, h('div', { class: 'grid grid-3' },
        ...o.indices.map((i) => h('article', { class: 'card index-card', testid: 'index-card', dataset: { index: i.index } },
          h('div', { class: 'gpu-head' }, h('h3', { text: i.index }), ...i.aliases.map((a) => badge(`alias: ${a}`, 'info'))),
          kv([['Documents', fmtNum(i.docs)], ['Dimension', isNum(i.dim) ? fmtNum(i.dim) : '—']]))),
        card('Totals', kv([
          ['Index documents', fmtNum(o.total_docs)],
          ['Files (PostgreSQL)', fmtNum(refs.files)],
          ['Transcribed files', fmtNum(refs.transcribed_files)],
          ['Speakers', fmtNum(refs.speakers)],
          ...vp,
        ]))));
      const running = isRunning(o.check);
      enable(run, !running);
      enable(stop, running);
      track(o.check);
      replace(result, running ? runSummary(o.check) : checkReport(o.check));
    } catch (e) {
      if (e.name === 'AbortError') return;
      showMessage(msg, e);
    }
  }

  async function start() {
    await busy(run, async () => {
      try {
        await post('/v1/admin/integrity/check', { dry_run: dry.checked });
        toast(dry.checked ? 'Dry-run check started.' : 'Integrity check started.', 'ok');
      } catch (e) {
        toast(e, 'error');
      }
      load();
    });
  }

  const stopRun = () => stopSection(stop, '/v1/admin/integrity/stop', 'Stopping the check…', load);

  await load();
}

async function consistencyPanel(box, ctx) {
  const msg = messageEl('consistency-error');
  const counts = h('div');
  const progress = jobProgress('repair-progress', 'Repair progress');
  const profile = select([], { id: 'repair-profile', testid: 'repair-profile' });
  const check = button('Check', () => busy(check, load), { testid: 'consistency-check' });
  const repair = button('Repair', () => start(), { kind: 'primary', testid: 'repair-start', disabled: true });
  const stop = button('Stop', () => stopRun(), { kind: 'danger-outline', testid: 'repair-stop', disabled: true });
  const result = h('div');
  replace(box, h('div', { class: 'stack' },
    msg,
    card('Speakers in PostgreSQL against each profile\u2019s index',
      h('div', { class: 'row-actions' }, check),
      counts),
    card('Repair',
      h('p', { class: 'small muted', text: 'Puts every missing speaker back into the profile\u2019s index: from the stored voiceprint where there is one, otherwise extracted again from the audio.' }),
      h('div', { class: 'inline-form' }, field('Profile', profile), h('div', { class: 'inline-actions' }, repair, stop)),
      progress.el, result)));
  const track = sectionTracker(ctx, progress, () => load());

  async function load() {
    try {
      const c = await api('/v1/admin/embeddings/consistency', { signal: ctx.signal });
      showMessage(msg, null);
      const rows = c.profiles.map((p) => h('tr', { testid: 'consistency-row', dataset: { profile: p.profile } },
        td(h('span', null, h('strong', { text: p.profile }), p.profile === c.active_profile ? h('span', null, ' ', badge('active', 'info')) : null)),
        td(p.index), td(p.exists ? 'yes' : badge('missing', 'warn')),
        td(fmtNum(p.indexed), 'num'),
        td(fmtNum(p.missing), p.missing ? 'num text-warn' : 'num'),
        td(fmtNum(p.missing_with_voiceprint), 'num'),
        td(fmtNum(p.unrepairable), p.unrepairable ? 'num text-danger' : 'num'),
        td(fmtNum(p.orphans), p.orphans ? 'num text-warn' : 'num')));
      replace(counts,
        h('div', { class: 'chips' }, chip('PostgreSQL speakers', fmtNum(c.speakers), 'muted', 'consistency-speakers'), chip('Active profile', c.active_profile)),
        table(['Profile', 'Index', 'Exists', ['Indexed', 'num'], ['Missing', 'num'], ['With voiceprint', 'num'], ['Unrepairable', 'num'], ['Orphans', 'num']], rows, { testid: 'consistency-table', caption: 'Embedding consistency by profile' }).el);
      const chosen = profile.value;
      replace(profile, ...c.profiles.map((p) => h('option', { value: p.profile, text: p.profile === c.active_profile ? `${p.profile} (active)` : p.profile })));
      profile.value = chosen || c.active_profile;
      const running = isRunning(c.repair);
      enable(repair, !running);
      enable(stop, running);
      track(c.repair);
      replace(result, runSummary(c.repair), c.repair && !running ? reportList(c.repair.report) : null);
    } catch (e) {
      if (e.name === 'AbortError') return;
      showMessage(msg, e);
    }
  }

  async function start() {
    await busy(repair, async () => {
      try {
        await post('/v1/admin/embeddings/repair', { profile: profile.value || undefined });
        toast(`Repair of ${profile.value} started.`, 'ok');
      } catch (e) {
        toast(e, 'error');
      }
      load();
    });
  }

  const stopRun = () => stopSection(stop, '/v1/admin/embeddings/repair/stop', 'Stopping the repair…', load);

  await load();
}

const MIGRATION_ACTIONS = [
  { action: 'start', label: 'Start migration', kind: 'primary' },
  { action: 'stop', label: 'Stop migration', kind: 'danger-outline' },
  {
    action: 'finalize', label: 'Finalize', kind: 'secondary',
    confirm: 'Finalizing swaps the speaker alias from v3 to v4 atomically: from then on every speaker operation uses the v4 embeddings. This is not easily reversible.',
  },
  {
    action: 'retry-failed', label: 'Retry failed', kind: 'secondary',
  },
  {
    action: 'force-complete', label: 'Force complete', kind: 'danger-outline',
    confirm: 'Force complete skips the speakers that failed or are left and finalizes anyway: those speakers have no v4 voiceprint and drop out of speaker matching. Use with caution.',
    check: 'I understand that speakers without a v4 voiceprint are left out',
  },
  {
    action: 'force-reextract', label: 'Force re-extract', kind: 'secondary',
    confirm: 'Force re-extract runs the v4 extraction again for every speaker, even those already migrated. It reads all the audio again and takes as long as the first migration.',
  },
  {
    action: 'rollback', label: 'Roll back to v3', kind: 'danger-outline',
    confirm: 'Rolling back points speaker search at the v3 index again. The v4 voiceprints are kept.',
  },
];

async function migrationPanel(box, ctx) {
  const msg = messageEl('migration-error');
  const chips = h('div', { class: 'chips', testid: 'migration-chips' });
  const speakersBar = usageBar({ label: 'Speakers migrated', testid: 'migration-speakers-bar', warnPct: 101 });
  const speakersText = h('p', { class: 'num small', testid: 'migration-counts' });
  const progress = jobProgress('migration-progress', 'Migration job progress');
  const failures = h('div');
  const runInfo = h('div');
  const buttons = new Map();
  for (const a of MIGRATION_ACTIONS) {
    buttons.set(a.action, button(a.label, () => act(a), { kind: a.kind, testid: `migration-${a.action}`, disabled: true }));
  }
  replace(box, h('div', { class: 'stack' },
    msg,
    chips,
    card('Progress',
      speakersBar.el, speakersText, progress.el, runInfo),
    card('Actions',
      alertBox('Finalization performs an atomic alias swap from v3 to v4. Once finalized, speaker matching uses v4 embeddings; this is not easily reversible. Force complete finalizes despite failed speakers: use it with caution.', 'warn', 'migration-warning'),
      h('div', { class: 'row-actions' }, ...buttons.values())),
    failures));
  const track = sectionTracker(ctx, progress, () => load());
  let status = null;

  function applyState(m) {
    const migrating = m.migrating;
    const finalized = m.mode === 'v4';
    const allowed = {
      start: !migrating && !finalized,
      stop: migrating,
      finalize: !migrating && !finalized && m.can_finalize,
      'retry-failed': !migrating && m.failed > 0,
      'force-complete': !migrating && !finalized && !m.can_finalize && m.v4_docs > 0,
      'force-reextract': !migrating,
      rollback: !migrating && finalized,
    };
    for (const [a, btn] of buttons) enable(btn, allowed[a]);
    const state = m.run ? m.run.state : null;
    buttons.get('start').textContent = !migrating && (state === 'stopped' || state === 'stalled' || (m.processed > 0 && m.remaining > 0)) ? 'Resume migration' : 'Start migration';
  }

  async function load() {
    try {
      const m = await api('/v1/admin/embeddings/migration', { signal: ctx.signal });
      showMessage(msg, null);
      render(m);
    } catch (e) {
      if (e.name === 'AbortError') return;
      showMessage(msg, e);
    }
  }

  function render(m) {
    status = m;
    replace(chips,
      chip('Mode', m.mode.toUpperCase(), m.mode === 'v4' ? 'ok' : 'muted', 'migration-mode'),
      m.active_profile !== m.mode ? chip('Active profile', m.active_profile, 'warn') : null,
      chip('V3 docs', fmtNum(m.v3_docs), 'muted', 'migration-v3-docs'),
      chip('V4 docs', fmtNum(m.v4_docs), 'muted', 'migration-v4-docs'),
      chip('Status', m.migrating ? 'Migrating' : (m.run ? m.run.state.replace(/_/g, ' ') : 'not started'), m.migrating ? 'info' : 'muted', 'migration-status'));
    speakersBar.update(m.processed, m.speakers || null);
    setText(speakersText, `${fmtNum(m.processed)} of ${fmtNum(m.speakers)} speakers have a v4 voiceprint · ${fmtNum(m.remaining)} remaining · ${fmtNum(m.failed)} failed${m.can_finalize ? ' · ready to finalize' : ''}`);
    applyState(m);
    track(m.run);
    replace(runInfo, runSummary(m.run), m.run && !isRunning(m.run) ? reportList(m.run.report) : null);
    if (m.failures.length) {
      const rows = m.failures.map((f) => h('tr', null,
        td(h('span', { class: 'mono', title: f.speaker_id, text: shortId(f.speaker_id) })),
        td(f.profile), td(h('code', { text: f.error_code })), td(f.message), td(fmtNum(f.attempts), 'num'), td(timeEl(f.at, true))));
      replace(failures, card(`Failed speakers (${fmtNum(m.failed)})`,
        table(['Speaker', 'Profile', 'Error', 'Message', ['Attempts', 'num'], 'When'], rows, { testid: 'migration-failures', caption: 'Speakers whose migration failed' }).el));
    } else {
      replace(failures);
    }
  }

  async function act(a) {
    if (a.confirm) {
      const ok = await confirmDialog({
        title: `${a.label}?`,
        message: a.confirm,
        confirmLabel: a.label,
        danger: a.kind.startsWith('danger'),
        requireCheck: a.check,
      });
      if (!ok) return;
    }
    const b = buttons.get(a.action);
    await busy(b, async () => {
      try {
        const m = await post(`/v1/admin/embeddings/migration/${a.action}`);
        toast(`${a.label}: done.`, 'ok');
        render(m);
      } catch (e) {
        toast(e, 'error');
        load();
      }
    });
    if (status) applyState(status);
  }

  // The job's events move the bar; the speakers' counts follow at most every 5 s.
  let last = 0;
  ctx.onEvent((name, ev) => {
    if (!status || !status.run || !status.run.job || !ev || ev.id !== status.run.job.id) return;
    if (name === 'progress' && Date.now() - last > 5000) {
      last = Date.now();
      load();
    }
  });

  await load();
}

// =============================================================================================
// Retention

function timezoneList() {
  let zones = [];
  try {
    zones = Intl.supportedValuesOf ? Intl.supportedValuesOf('timeZone') : [];
  } catch {
    zones = [];
  }
  if (!zones.includes('UTC')) zones = ['UTC', ...zones];
  return h('datalist', { id: 'tz-list' }, zones.map((z) => h('option', { value: z })));
}

export async function renderRetention(root, ctx) {
  const msg = messageEl('retention-error');
  const enabled = checkbox({ id: 'retention-enabled', testid: 'retention-enabled' });
  const days = input({ id: 'retention-days', testid: 'retention-days', type: 'number', min: '1', max: '3650', step: '1', inputmode: 'numeric', required: true });
  const runTime = input({ id: 'retention-time', testid: 'retention-time', type: 'time', required: true });
  const tz = input({ id: 'retention-timezone', testid: 'retention-timezone', list: 'tz-list', autocomplete: 'off', required: true });
  const errFiles = checkbox({ id: 'retention-error-files', testid: 'retention-error-files' });
  const confirm = checkbox({ id: 'retention-confirm', testid: 'retention-confirm' });
  const confirmText = h('span');
  const confirmRow = h('div', { class: 'confirm-row field-wide', hidden: true },
    h('div', { class: 'field field-inline' }, confirm, h('label', { for: 'retention-confirm' }, confirmText)));
  const save = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'retention-save', text: 'Save settings' });
  const formMsg = messageEl('retention-form-error');
  const form = h('form', { class: 'form-grid', novalidate: true },
    field('Delete old files automatically', enabled, { inline: true, wide: true }),
    confirmRow,
    field('Retention (days)', days, { hint: 'Files older than this are deleted (1–3,650).' }),
    field('Daily run time', runTime, { hint: 'HH:MM in the timezone below.' }),
    field('Timezone', tz, { hint: 'IANA name, e.g. Europe/Paris.' }),
    field('Also delete old files whose processing failed', errFiles, { inline: true, wide: true }),
    formMsg,
    h('div', { class: 'form-actions' }, save));
  const statusBox = h('div', null, loading());
  const progress = jobProgress('retention-progress', 'Retention run progress');
  const runBtn = button('Run now', () => runNow(false), { kind: 'danger', testid: 'retention-run', disabled: true });
  const dryBtn = button('Dry run', () => runNow(true), { testid: 'retention-dry-run', disabled: true });
  const stopBtn = button('Stop', () => stopRun(), { kind: 'danger-outline', testid: 'retention-stop', disabled: true });
  const refreshBtn = button('Refresh status', () => busy(refreshBtn, load), { testid: 'retention-refresh' });
  const previewBtn = button('Preview', () => preview(), { testid: 'retention-preview' });
  const previewBox = h('div');
  append(root, [
    timezoneList(),
    pageHeader('Retention'),
    msg,
    h('div', { class: 'grid grid-2' },
      card('Settings', form),
      card('Status', statusBox, h('div', { class: 'row-actions' }, runBtn, dryBtn, stopBtn, refreshBtn), progress.el)),
    card('Preview',
      h('p', { class: 'small muted', text: 'The files the current (saved) settings would delete, oldest first.' }),
      h('div', { class: 'row-actions' }, previewBtn),
      previewBox),
  ]);
  let saved = null;
  const track = sectionTracker(ctx, progress, () => load());

  function updateConfirm() {
    const turningOn = enabled.checked && saved && !saved.enabled;
    confirmRow.hidden = !turningOn;
    setText(confirmText, `I understand that every day, files older than ${days.value || '…'} days are deleted for good.`);
    if (!turningOn) confirm.checked = false;
  }
  enabled.addEventListener('change', updateConfirm);
  days.addEventListener('input', updateConfirm);

  function fill(s) {
    saved = s;
    enabled.checked = s.enabled;
    days.value = String(s.retention_days);
    runTime.value = s.run_time;
    tz.value = s.timezone;
    errFiles.checked = s.delete_error_files;
    updateConfirm();
  }

  async function load() {
    try {
      const st = await api('/v1/admin/retention', { signal: ctx.signal });
      showMessage(msg, null);
      if (!saved) fill(st.settings);
      const last = st.last_run;
      const r = (last && last.report) || {};
      replace(statusBox,
        kv([
          ['Retention', st.settings.enabled ? badge('on', 'ok') : badge('off', 'muted')],
          ['Next run', st.next_run ? timeEl(st.next_run) : '—'],
          ['Last run', last ? h('span', null, statusBadge(last.state), ' ', timeEl(last.started_at)) : 'never'],
          ['Files deleted', last ? fmtNum(r.files_deleted) : '—'],
          ['Space freed', last ? fmtBytes(r.bytes_freed) : '—'],
          ['Eligible then', last && isNum(r.eligible) ? fmtNum(r.eligible) : '—'],
          ['Dry run', last && r.dry_run ? 'yes' : undefined],
          ['Left half-way', st.pending_deletion ? `${fmtNum(st.pending_deletion)} file(s), finished by the next run` : undefined],
        ], 'kv-compact'));
      const running = isRunning(last);
      enable(runBtn, !running);
      enable(dryBtn, !running);
      enable(stopBtn, running);
      track(last);
    } catch (e) {
      if (e.name === 'AbortError') return;
      showMessage(msg, e);
      replace(statusBox);
    }
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(save, async () => {
      showMessage(formMsg, null);
      const d = numberValue(days);
      if (d === null || !Number.isInteger(d) || d < 1 || d > 3650) {
        showMessage(formMsg, { message: `retention_days must be 1-3650, got ${days.value || 'nothing'}`, code: 'invalid_setting' });
        days.focus();
        return;
      }
      if (!/^\d\d:\d\d$/.test(runTime.value)) {
        showMessage(formMsg, { message: 'the run time must be HH:MM', code: 'invalid_setting' });
        runTime.focus();
        return;
      }
      const turningOn = enabled.checked && saved && !saved.enabled;
      if (turningOn && !confirm.checked) {
        showMessage(formMsg, 'Tick the confirmation: turning retention on deletes old files for good, every day.');
        confirm.focus();
        return;
      }
      try {
        const s = await api('/v1/settings/retention', {
          method: 'PUT',
          body: {
            enabled: enabled.checked, retention_days: d, run_time: runTime.value, timezone: tz.value.trim(),
            delete_error_files: errFiles.checked, confirm: Boolean(turningOn && confirm.checked),
          },
        });
        fill(s);
        showMessage(formMsg, 'Saved.', 'ok');
        replace(previewBox);
        load();
      } catch (ex) {
        showMessage(formMsg, ex);
      }
    });
  });

  async function preview() {
    await busy(previewBtn, async () => {
      try {
        const p = await api('/v1/admin/retention/preview', { query: { limit: 200 }, signal: ctx.signal });
        const rows = p.files.map((f) => h('tr', { testid: 'retention-preview-row', dataset: { fileId: f.id } },
          td(h('span', { class: 'strong', text: f.filename })),
          td(f.owner_name || (f.owner ? shortId(f.owner) : '—')),
          td(`${fmtNum(f.age_days)} d`, 'num'),
          td(fmtBytes(f.size_bytes), 'num'),
          td(statusBadge(f.status)),
          td(timeEl(f.created_at))));
        replace(previewBox,
          h('p', { class: 'num', testid: 'retention-preview-totals' },
            `${fmtNum(p.total_files)} file(s), ${fmtBytes(p.total_bytes)}, created before `, timeEl(p.cutoff),
            ` (${p.retention_days} days, ${p.timezone}${p.delete_error_files ? ', failed files included' : ''}).`,
            p.total_files > p.files.length ? ` The oldest ${fmtNum(p.files.length)} are listed.` : ''),
          rows.length
            ? table(['Title', 'Owner', ['Age', 'num'], ['Size', 'num'], 'Status', 'Uploaded'], rows, { testid: 'retention-preview-table', caption: 'Files the next retention run would delete', stack: true }).el
            : h('div', { testid: 'retention-preview-table', caption: 'Files the next retention run would delete' }, empty('Nothing would be deleted.')));
      } catch (e) {
        if (e.name === 'AbortError') return;
        replace(previewBox, alertBox(e));
      }
    });
  }

  async function runNow(dryRun) {
    if (!dryRun) {
      let details = null;
      try {
        const p = await api('/v1/admin/retention/preview', { query: { limit: 1 } });
        details = h('p', { class: 'strong', text: `${fmtNum(p.total_files)} file(s) (${fmtBytes(p.total_bytes)}) are older than ${p.retention_days} days now.` });
      } catch {
        details = null;
      }
      const ok = await confirmDialog({
        title: 'Run retention now?',
        message: 'Every file older than the retention limit is deleted for good now, with its transcript, speakers and audio.',
        details,
        confirmLabel: 'Delete old files now',
        danger: true,
        requireCheck: 'I understand these files are deleted for good',
      });
      if (!ok) return;
    }
    await busy(dryRun ? dryBtn : runBtn, async () => {
      try {
        await post('/v1/admin/retention/run', dryRun ? { dry_run: true } : { confirm: true });
        toast(dryRun ? 'Dry run started: nothing is deleted.' : 'Retention run started.', 'ok');
      } catch (e) {
        toast(e, 'error');
      }
      load();
    });
  }

  const stopRun = () => stopSection(stopBtn, '/v1/admin/retention/stop', 'Stopping the retention run…', load);

  await load();
}

// =============================================================================================
// Settings: retry, budgets, prices

export async function renderSettings(root, ctx) {
  const retry = h('div', null, loading());
  const budgets = h('div', null, loading());
  const prices = h('div', null, loading());
  append(root, [
    timezoneList(),
    pageHeader('Settings'),
    h('div', { class: 'grid grid-2' }, card('Retries', retry), card('Budgets', budgets)),
    card('Prices', prices),
  ]);
  await Promise.all([retryForm(retry, ctx), budgetsForm(budgets, ctx), pricesForm(prices, ctx)]);
}

async function retryForm(box, ctx) {
  let s;
  try {
    s = await api('/v1/settings/retry', { signal: ctx.signal });
  } catch (e) {
    if (e.name !== 'AbortError') replace(box, alertBox(e));
    return;
  }
  const limit = checkbox({ id: 'retry-limit', testid: 'retry-limit', checked: s.limit_retries });
  const max = input({ id: 'retry-max', testid: 'retry-max', type: 'number', min: '1', max: '10', step: '1', inputmode: 'numeric', value: String(s.max_retries) });
  const msg = messageEl('retry-error');
  const save = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'retry-save', text: 'Save' });
  const reset = button('Reset to defaults', () => put({ limit_retries: true, max_retries: 3 }, reset), { testid: 'retry-reset' });
  const sync = () => { max.disabled = !limit.checked; };
  limit.addEventListener('change', sync);
  sync();
  const form = h('form', { class: 'form-grid', novalidate: true },
    field('Limit retries', limit, { inline: true, wide: true, hint: 'Off: failed tasks keep retrying (with backoff) until they succeed.' }),
    field('Maximum retries per task', max, { hint: '1–10 (default 3).' }),
    msg,
    h('div', { class: 'form-actions' }, save, reset));

  async function put(body, btn) {
    await busy(btn, async () => {
      try {
        const r = await api('/v1/settings/retry', { method: 'PUT', body });
        limit.checked = r.limit_retries;
        max.value = String(r.max_retries);
        sync();
        showMessage(msg, 'Saved. It applies from the next retry decision.', 'ok');
      } catch (e) {
        showMessage(msg, e);
      }
    });
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const n = numberValue(max);
    if (n === null || !Number.isInteger(n) || n < 1 || n > 10) {
      showMessage(msg, { message: `max_retries must be between 1 and 10, got ${max.value || 'nothing'}`, code: 'invalid_setting' });
      max.focus();
      return;
    }
    put({ limit_retries: limit.checked, max_retries: n }, save);
  });
  replace(box, form);
}

async function budgetsForm(box, ctx) {
  let s;
  try {
    s = await api('/v1/settings/budgets', { signal: ctx.signal });
  } catch (e) {
    if (e.name !== 'AbortError') replace(box, alertBox(e));
    return;
  }
  const tz = input({ id: 'budgets-timezone', testid: 'budgets-timezone', list: 'tz-list', autocomplete: 'off', value: s.timezone });
  const warn = input({ id: 'budgets-warn', testid: 'budgets-warn', type: 'number', min: '1', max: '99', step: '1', value: String(s.warn_percent) });
  const msg = messageEl('budgets-error');
  const save = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'budgets-save', text: 'Save' });
  const form = h('form', { class: 'form-grid', novalidate: true },
    field('Timezone a budget month starts in', tz, { hint: 'IANA name; the month starts at 00:00 on the 1st there.' }),
    field('Warning from (% of a budget)', warn, { hint: '1–99 (default 80): usage is shown in the warning colour from here.' }),
    msg,
    h('div', { class: 'form-actions' }, save));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const w = numberValue(warn);
    if (w === null || !Number.isInteger(w) || w < 1 || w > 99) {
      showMessage(msg, { message: `warn_percent must be 1-99, got ${warn.value || 'nothing'}`, code: 'invalid_setting' });
      warn.focus();
      return;
    }
    busy(save, async () => {
      try {
        const r = await api('/v1/settings/budgets', { method: 'PUT', body: { timezone: tz.value.trim(), warn_percent: w } });
        tz.value = r.timezone;
        warn.value = String(r.warn_percent);
        showMessage(msg, 'Saved.', 'ok');
      } catch (ex) {
        showMessage(msg, ex);
      }
    });
  });
  replace(box, form);
}

const CONNECTOR_RE = /^[a-z0-9_.-]{1,64}$/;

async function pricesForm(box, ctx) {
  let p;
  try {
    p = await api('/v1/settings/prices', { signal: ctx.signal });
  } catch (e) {
    if (e.name !== 'AbortError') replace(box, alertBox(e));
    return;
  }
  const msg = messageEl('prices-error');
  const save = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'prices-save', text: 'Save prices' });

  function editor(what, title, unit, max, values) {
    const t = table(['Connector', [unit, 'num'], ''], [], { testid: `${what}-table`, caption: `${title} prices` });
    const { tbody } = t;
    const addRow = (name = '', price = '') => {
      const fixed = name === 'self_hosted';
      const n = input({ value: name, 'aria-label': `${title}: connector name`, maxlength: '64', readonly: fixed, autocomplete: 'off', testid: `${what}-connector` });
      const v = input({ type: 'number', min: '0', max: String(max), step: 'any', value: String(price), 'aria-label': `${title}: ${unit}`, readonly: fixed, testid: `${what}-price` });
      const tr = h('tr', { dataset: { what } });
      const rm = fixed ? h('span', { class: 'muted small', text: 'always 0' }) : button('Remove', () => tr.remove(), { kind: 'secondary btn-small', ariaLabel: `Remove ${name || 'this connector'}` });
      append(tr, [td(n), td(v, 'num'), td(rm)]);
      tbody.appendChild(tr);
      return n;
    };
    const names = Object.keys(values);
    if (!names.includes('self_hosted')) addRow('self_hosted', 0);
    for (const k of names) addRow(k, values[k]);
    const add = button('Add connector', () => addRow().focus(), { testid: `${what}-add` });
    const read = () => {
      const out = {};
      for (const row of tbody.querySelectorAll('tr')) {
        const [n, v] = row.querySelectorAll('input');
        const name = n.value.trim();
        if (!name && !v.value.trim()) continue;
        if (!CONNECTOR_RE.test(name)) {
          n.focus();
          throw { message: `${what}: a connector is 1-64 lowercase letters, digits, \`_\`, \`-\` or \`.\` (e.g. \`openai_whisper\`), got "${name}"`, code: 'invalid_setting' };
        }
        const price = Number(v.value);
        if (v.value.trim() === '' || !Number.isFinite(price) || price < 0 || price > max) {
          v.focus();
          throw { message: `${what}.${name}: a price is 0-${max} US dollars, got ${v.value || 'nothing'}`, code: 'invalid_setting' };
        }
        if (name === 'self_hosted' && price !== 0) throw { message: `${what}.self_hosted costs 0`, code: 'invalid_setting' };
        if (Object.prototype.hasOwnProperty.call(out, name)) {
          n.focus();
          throw { message: `${what}: ${name} is listed twice`, code: 'invalid_setting' };
        }
        out[name] = price;
      }
      return out;
    };
    const el = h('div', { class: 'stack' }, h('h3', { text: title }), t.el, add);
    return { el, read };
  }

  const tr = editor('transcription_per_minute', 'Transcription', 'USD per audio minute', 100, p.transcription_per_minute || {});
  const llm = editor('llm_per_million_tokens', 'LLM', 'USD per million tokens', 10000, p.llm_per_million_tokens || {});
  const form = h('form', { class: 'stack', novalidate: true },
    h('p', { class: 'small muted', text: 'Estimated prices by connector. A price applies to usage written from now on: what was spent keeps the price it was written at. self_hosted (voxfleet\u2019s own workers) costs 0.' }),
    h('div', { class: 'grid grid-2' }, tr.el, llm.el),
    msg,
    h('div', { class: 'form-actions' }, save));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    let body;
    try {
      body = { transcription_per_minute: tr.read(), llm_per_million_tokens: llm.read() };
    } catch (ex) {
      showMessage(msg, ex);
      return;
    }
    busy(save, async () => {
      try {
        await api('/v1/settings/prices', { method: 'PUT', body });
        showMessage(msg, 'Saved. New usage is costed at these prices.', 'ok');
      } catch (ex) {
        showMessage(msg, ex);
      }
    });
  });
  replace(box, form);
}

// =============================================================================================
// Authentication settings (super_admin)

const AUTH_FIELDS = [
  ['access_token_seconds', 'Access token lifetime (seconds)', 60, 86400, 'Default 900. A signed-in page refreshes it quietly.'],
  ['session_days', 'Session lifetime (days)', 1, 365, 'Default 7. A session ends then whatever happens.'],
  ['idle_timeout_seconds', 'Idle timeout (seconds)', 300, 2592000, 'Default 3,600. A session not refreshed for this long ends.'],
  ['password_min_length', 'Minimum password length', 8, 128, 'Default 8.'],
  ['password_min_classes', 'Character classes required', 1, 4, 'Of lower case, upper case, digits and other characters (default 1).'],
  ['lockout_attempts', 'Failed sign-ins before lockout', 3, 100, 'Default 5, in a row.'],
  ['lockout_minutes', 'Lockout (minutes)', 1, 1440, 'Default 15. Admins can unlock an account sooner.'],
];

export async function renderAuthSettings(root, ctx) {
  append(root, pageHeader('Authentication'));
  const box = h('div', null, loading());
  root.appendChild(box);
  let s;
  try {
    s = await api('/v1/settings/auth', { signal: ctx.signal });
  } catch (e) {
    if (e.name !== 'AbortError') replace(box, alertBox(e));
    return;
  }
  const inputs = {};
  const groups = { session: [], password: [], lockout: [] };
  for (const [key, label, lo, hi, hint] of AUTH_FIELDS) {
    const el = input({ id: `auth-${key}`, testid: `auth-${key}`, type: 'number', min: String(lo), max: String(hi), step: '1', inputmode: 'numeric', value: String(s[key]) });
    inputs[key] = { el, lo, hi };
    const f = field(label, el, { hint: `${hint} Range ${fmtNum(lo)}–${fmtNum(hi)}.` });
    if (key.startsWith('password')) groups.password.push(f);
    else if (key.startsWith('lockout')) groups.lockout.push(f);
    else groups.session.push(f);
  }
  const roles = {};
  const roleBoxes = ['user', 'admin', 'super_admin'].map((r) => {
    roles[r] = checkbox({ id: `auth-mfa-${r}`, testid: `auth-mfa-${r}`, checked: s.mfa_required_roles.includes(r) });
    return field({ user: 'Users', admin: 'Admins', super_admin: 'Super admins' }[r], roles[r], { inline: true });
  });
  const sharing = checkbox({ id: 'auth-public-sharing', testid: 'auth-public-sharing', checked: s.public_sharing_allowed });
  const msg = messageEl('auth-error');
  const save = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'auth-save', text: 'Save' });
  const form = h('form', { class: 'stack', novalidate: true },
    h('div', { class: 'grid grid-2' },
      card('Sessions', h('div', { class: 'form-grid' }, ...groups.session)),
      card('Password policy', h('div', { class: 'form-grid' }, ...groups.password)),
      card('Lockout', h('div', { class: 'form-grid' }, ...groups.lockout)),
      card('Two-factor sign-in',
        h('fieldset', { class: 'fieldset' },
          h('legend', { text: 'Roles that must sign in with a second factor' }),
          ...roleBoxes),
        h('p', { class: 'small muted', text: 'Their members without one reach only their profile, to enrol, until it is set up.' })),
      card('Sharing', field('Users with the sharing permission may make public links to transcripts', sharing, { inline: true }))),
    msg,
    h('div', { class: 'form-actions' }, save));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const body = {};
    for (const [key, { el, lo, hi }] of Object.entries(inputs)) {
      const n = numberValue(el);
      if (n === null || !Number.isInteger(n) || n < lo || n > hi) {
        showMessage(msg, { message: `${key} must be ${lo}-${hi}, got ${el.value || 'nothing'}`, code: 'invalid_setting' });
        el.focus();
        return;
      }
      body[key] = n;
    }
    body.mfa_required_roles = Object.keys(roles).filter((r) => roles[r].checked);
    body.public_sharing_allowed = sharing.checked;
    busy(save, async () => {
      try {
        await api('/v1/settings/auth', { method: 'PUT', body });
        showMessage(msg, 'Saved. New values apply to sign-ins and refreshes from now on.', 'ok');
      } catch (ex) {
        showMessage(msg, ex);
      }
    });
  });
  replace(box, form);
}

// =============================================================================================
// Audit logs (super_admin)

/**
 * The event filter's options from GET /v1/admin/audit/events: per first part of the code
 * (`auth`, `admin`, …) a group with "every such event" (a prefix filter) and each code.
 */
function auditEventOptions(events) {
  const groups = new Map();
  for (const e of events) {
    const head = e.code.split('.')[0];
    if (!groups.has(head)) groups.set(head, []);
    groups.get(head).push(e);
  }
  return [...groups].map(([head, list]) => h('optgroup', { label: head },
    h('option', { value: `${head}.`, text: `Every ${head}.* event` }),
    list.map((e) => h('option', { value: e.code, text: e.code, title: e.description }))));
}

function dayStart(value, plusDays = 0) {
  if (!value) return undefined;
  const d = new Date(`${value}T00:00:00`);
  if (Number.isNaN(d.getTime())) return undefined;
  d.setDate(d.getDate() + plusDays);
  return d.toISOString();
}

export async function renderAudit(root, ctx) {
  const from = input({ id: 'audit-from', testid: 'audit-from', type: 'date' });
  const to = input({ id: 'audit-to', testid: 'audit-to', type: 'date' });
  const event = select([['', 'Any event']], { id: 'audit-event', testid: 'audit-event' });
  const outcome = select([['', 'Any'], ['success', 'OK'], ['failure', 'Failed']], { id: 'audit-outcome', testid: 'audit-outcome' });
  const user = select([['', 'Anyone']], { id: 'audit-user', testid: 'audit-user' });
  const apply = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'audit-apply', text: 'Apply' });
  const clearBtn = button('Clear', () => { filters.reset(); load(true); }, { testid: 'audit-clear' });
  const csv = button('Export CSV', () => exportAs('csv', csv), { testid: 'audit-export-csv' });
  const json = button('Export JSON', () => exportAs('json', json), { testid: 'audit-export-json' });
  const filters = h('form', { class: 'toolbar', novalidate: true, testid: 'audit-filters' },
    field('From', from), field('To (inclusive)', to),
    field('Event', event),
    field('Outcome', outcome), field('User', user),
    h('div', { class: 'inline-actions' }, apply, clearBtn));
  const msg = messageEl('audit-error');
  const tbody = h('tbody');
  const tbl = h('table', { class: 'table stackable', testid: 'audit-table' },
    h('caption', { class: 'sr-only', text: 'Audit log' }),
    h('thead', null, h('tr', null, ['Time', 'Event', 'User', 'Status', 'IP', 'Target', 'Details'].map((c) => h('th', { scope: 'col', text: c })))),
    tbody);
  const more = button('Load more', () => load(false), { testid: 'audit-more' });
  more.hidden = true;
  append(root, [
    pageHeader('Audit logs', csv, json),
    filters, msg,
    h('div', { class: 'table-wrap' }, tbl),
    h('div', { class: 'center' }, more),
  ]);

  try {
    const r = await api('/v1/admin/audit/events', { signal: ctx.signal });
    append(event, auditEventOptions(r.events));
  } catch (e) {
    if (e.name === 'AbortError') return;
    // codes unavailable: the filter offers "Any event" only
  }

  const names = new Map();
  try {
    const r = await api('/v1/users', { query: { limit: 500 }, signal: ctx.signal });
    for (const u of r.users) {
      names.set(u.id, u.name || u.email || shortId(u.id));
      user.appendChild(h('option', { value: u.id, text: u.email ? `${u.name} <${u.email}>` : u.name }));
    }
  } catch (e) {
    if (e.name === 'AbortError') return;
    // names unavailable: ids are shown instead
  }

  function query() {
    if (from.value && to.value && to.value < from.value) throw { message: 'The end date is before the start date.', code: 'invalid_query' };
    return {
      from: dayStart(from.value),
      to: dayStart(to.value, 1),
      event: event.value || undefined,
      outcome: outcome.value || undefined,
      user: user.value || undefined,
    };
  }

  function details(e) {
    const pre = h('pre', { class: 'json', testid: 'audit-details-json', text: JSON.stringify(e.detail ?? null, null, 2) });
    openDialog({
      title: `${e.event} · ${fmtDate(e.at, true)}`,
      testid: 'audit-details-dialog',
      wide: true,
      body: [
        kv([
          ['Event', e.event],
          ['Outcome', e.outcome],
          ['When', e.at],
          ['User', e.user_id ? `${names.get(e.user_id) || ''} (${e.user_id})` : '—'],
          ['Token', e.token_id || '—'],
          ['Target', e.target || '—'],
          ['Source IP', e.source_ip || '—'],
          ['Entry', String(e.id)],
        ], 'kv-compact'),
        h('h3', { text: 'Details' }),
        pre,
      ],
    });
  }

  function row(e) {
    const ok = e.outcome === 'success';
    return h('tr', { testid: 'audit-row', dataset: { event: e.event, outcome: e.outcome } },
      td(timeEl(e.at, true)),
      td(h('code', { text: e.event })),
      td(e.user_id ? h('span', { title: e.user_id, text: names.get(e.user_id) || shortId(e.user_id) }) : '—'),
      td(badge(ok ? 'OK' : 'FAIL', ok ? 'ok' : 'danger', 'audit-outcome-badge')),
      td(e.source_ip || '—', 'mono'),
      td(e.target ? h('span', { class: 'mono', title: e.target, text: e.target.length > 24 ? `${e.target.slice(0, 24)}…` : e.target }) : '—'),
      td(button('…', () => details(e), { kind: 'secondary btn-small', testid: 'audit-details', ariaLabel: `Details of ${e.event} at ${fmtDate(e.at, true)}` })));
  }

  let cursor = null;
  let seq = 0;
  async function load(reset) {
    const my = ++seq;
    let q;
    try {
      q = query();
    } catch (ex) {
      showMessage(msg, ex);
      return;
    }
    try {
      const page = await api('/v1/admin/audit', { query: { ...q, limit: 100, cursor: reset ? undefined : cursor }, signal: ctx.signal });
      if (my !== seq) return;
      showMessage(msg, null);
      if (reset) replace(tbody);
      for (const e of page.entries) tbody.appendChild(row(e));
      labelCells(tbl);
      if (reset && !page.entries.length) tbody.appendChild(h('tr', null, h('td', { colspan: '7', class: 'muted center', text: 'No entries match these filters.' })));
      cursor = page.next_cursor;
      more.hidden = !cursor;
    } catch (e) {
      if (e.name === 'AbortError') return;
      showMessage(msg, e);
    }
  }

  async function exportAs(format, btn) {
    let q;
    try {
      q = query();
    } catch (ex) {
      showMessage(msg, ex);
      return;
    }
    await busy(btn, async () => {
      try {
        await download('/v1/admin/audit/export', { ...q, format }, `audit-logs-${utcDay()}.${format}`);
        toast(`Exported the filtered audit log as ${format.toUpperCase()}.`, 'ok');
      } catch (e) {
        showMessage(msg, e);
      }
    });
  }

  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    busy(apply, () => load(true));
  });
  await load(true);
}
