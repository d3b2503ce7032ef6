// The cairn dashboard: a token login, the fleet view, a service view
// (snapshots, charts, runs, drills, runbook), the restore wizard, jobs and
// (for admins) the audit log. Plain ES modules served by `cairn server`; the
// page only talks to /api/v1 on its own origin (CSP default-src 'self').
//
// Routes (the URL fragment): #/ fleet, #/service/<name>, #/restore[/<name>],
// #/jobs, #/job/<id>, #/audit.

import { api, ApiError, can, setToken, setUnauthorizedHandler, token } from './api.js';
import { legend, lineChart, timeline } from './charts.js';
import {
  ago,
  badge,
  clear,
  formatBytes,
  formatDuration,
  formatTime,
  h,
  isoUtc,
  parseTime,
  sanitizedHtml,
  timeEl,
} from './dom.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');

let me = null; // {name, role, services}
let timers = []; // cleared on every route change

function every(ms, fn) {
  timers.push(setInterval(fn, ms));
}

// ---------------------------------------------------------------- session

setUnauthorizedHandler(() => {
  setToken(null);
  me = null;
  renderLogin('Your session ended: the token was revoked or has expired. Log in again.');
});

async function start() {
  document.getElementById('logout').addEventListener('click', logout);
  window.addEventListener('hashchange', route);
  if (!token()) return renderLogin();
  try {
    me = await api.whoami();
  } catch (e) {
    if (e.status === 401) return; // the handler showed the login
    return renderLogin(e.message);
  }
  showChrome();
  route();
}

function logout() {
  setToken(null);
  me = null;
  location.hash = '#/';
  renderLogin('You are logged out.');
}

function renderLogin(message) {
  stopTimers();
  nav.hidden = true;
  who.hidden = true;
  clear(nav);
  document.title = 'Log in · cairn';
  const input = h('input', {
    id: 'token',
    name: 'token',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
    required: true,
    'aria-describedby': 'token-help',
  });
  const error = h('p', { id: 'login-error', class: 'error', role: 'alert', hidden: !message }, message ?? '');
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Log in');
  const form = h(
    'form',
    { class: 'login card', id: 'login-form' },
    h('h1', {}, 'cairn'),
    h('p', { class: 'lead' }, 'Backups and restores of the fleet.'),
    h('label', { for: 'token' }, 'Access token'),
    input,
    h('p', { id: 'token-help', class: 'help' }, 'Ask an admin for one: ', h('code', {}, 'cairn token create --name you --role viewer')),
    error,
    submit,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const value = input.value.trim();
    submit.disabled = true;
    error.hidden = true;
    try {
      const who = await api.whoami(value);
      if (who.role === 'agent') throw new ApiError(403, 'agent tokens write backups; they cannot use the dashboard');
      setToken(value);
      me = who;
      showChrome();
      if (!location.hash || location.hash === '#') location.hash = '#/';
      route();
    } catch (e) {
      error.textContent =
        e.status === 401
          ? 'This token was not accepted: it is unknown, revoked or expired.'
          : e.status === 429
            ? 'Too many failed attempts from this address; wait a minute and try again.'
            : `Login failed: ${e.message}`;
      error.hidden = false;
      submit.disabled = false;
      input.select();
    }
  });
  clear(main).append(form);
  input.focus();
}

function showChrome() {
  clear(nav);
  const link = (href, text, id) => h('a', { href, id }, text);
  nav.append(link('#/', 'Fleet', 'nav-fleet'));
  if (can(me.role, 'restore')) nav.append(link('#/restore', 'Restore', 'nav-restore'));
  nav.append(link('#/jobs', 'Jobs', 'nav-jobs'));
  if (can(me.role, 'admin')) nav.append(link('#/audit', 'Audit log', 'nav-audit'));
  nav.hidden = false;
  const scope = me.services.includes('*') ? 'all services' : me.services.join(', ');
  clear(document.getElementById('who-text')).append(
    h('strong', { id: 'who-name' }, me.name),
    ' · ',
    h('span', { id: 'who-role', class: 'role' }, me.role),
    ' · ',
    h('span', { class: 'muted' }, scope),
  );
  who.hidden = false;
}

// ---------------------------------------------------------------- routing

function stopTimers() {
  timers.forEach(clearInterval);
  timers = [];
}

async function route() {
  if (!me) return;
  stopTimers();
  const parts = location.hash.replace(/^#\/?/, '').split('?')[0].split('/').map(decodeURIComponent);
  for (const a of nav.querySelectorAll('a')) a.removeAttribute('aria-current');
  const current = { '': 'nav-fleet', service: 'nav-fleet', restore: 'nav-restore', jobs: 'nav-jobs', job: 'nav-jobs', audit: 'nav-audit' }[parts[0]];
  document.getElementById(current)?.setAttribute('aria-current', 'page');
  const view = h('div', { class: 'view' }, h('p', { class: 'loading' }, 'Loading…'));
  clear(main).append(view);
  try {
    switch (parts[0]) {
      case '':
        return await fleetView(view);
      case 'service':
        return await serviceView(view, parts[1]);
      case 'restore':
        if (!can(me.role, 'restore')) return notAllowed(view);
        return await restoreWizard(view, parts[1]);
      case 'jobs':
        return await jobsView(view);
      case 'job':
        return await jobView(view, parts[1]);
      case 'audit':
        if (!can(me.role, 'admin')) return notAllowed(view);
        return await auditView(view);
      default:
        clear(view).append(h('h1', {}, 'Not found'), h('p', {}, h('a', { href: '#/' }, 'Back to the fleet')));
    }
  } catch (e) {
    if (e.status === 401) return;
    clear(view).append(h('h1', {}, 'Something went wrong'), h('p', { class: 'error', role: 'alert' }, e.message));
  }
}

function notAllowed(view) {
  clear(view).append(
    h('h1', {}, 'Not available'),
    h('p', {}, `The ${me.role} role may not do this.`),
    h('p', {}, h('a', { href: '#/' }, 'Back to the fleet')),
  );
}

function title(text) {
  document.title = `${text} · cairn`;
  return h('h1', {}, text);
}

// ---------------------------------------------------------------- status

// The overall state of a service row: red when its data is not protected as
// promised (RPO missed, never backed up, last drill failed), amber when it
// is but something needs a look (no drill yet, RTO over objective, alerts,
// last run failed), green otherwise.
function overall(st) {
  if (st.error) return { level: 'bad', text: 'Unknown' };
  if (!st.compliant || st.last_drill_passed === false) return { level: 'bad', text: 'At risk' };
  if (st.last_drill_passed === null || st.last_drill_passed === undefined || !st.rto_compliant || st.firing_alerts > 0 || st.last_run_result === 'failure')
    return { level: 'warn', text: 'Needs attention' };
  return { level: 'ok', text: 'Healthy' };
}

function rpoBadge(st) {
  if (!st.last_success && st.rpo_seconds === null) return badge('bad', 'Not compliant', { class: 'rpo-state', attrs: { title: 'never backed up' } });
  return st.compliant
    ? badge('ok', 'Compliant', { class: 'rpo-state' })
    : badge('bad', 'Not compliant', { class: 'rpo-state' });
}

function rpoText(st) {
  const objective = formatDuration(st.rpo_objective_seconds);
  if (st.rpo_seconds === null || st.rpo_seconds === undefined) return `no restorable point / ${objective}`;
  return `${formatDuration(st.rpo_seconds)} / ${objective}`;
}

function rtoBadge(st) {
  if (st.last_drill_passed === null || st.last_drill_passed === undefined) return badge('warn', 'No drill yet', { class: 'rto-state' });
  if (!st.last_drill_passed) return badge('bad', 'Drill failed', { class: 'rto-state' });
  return st.rto_compliant ? badge('ok', 'Compliant', { class: 'rto-state' }) : badge('warn', 'Over objective', { class: 'rto-state' });
}

function rtoText(st) {
  const objective = formatDuration(st.rto_objective_seconds);
  if (st.measured_rto_seconds === null || st.measured_rto_seconds === undefined) return `not measured / ${objective}`;
  return `${formatDuration(st.measured_rto_seconds)} / ${objective}`;
}

// ---------------------------------------------------------------- fleet

async function fleetView(view) {
  const [services, alerts] = await Promise.all([api.services(), api.alerts()]);
  const firing = alerts.filter((a) => a.state === 'firing');
  const states = services.map(overall);
  const counts = { ok: 0, warn: 0, bad: 0 };
  states.forEach((s) => counts[s.level]++);
  const restorer = can(me.role, 'restore');
  const rows = services.map((st, i) => {
    const o = states[i];
    return h(
      'tr',
      { class: `row-${o.level}`, dataset: { service: st.service } },
      h('th', { scope: 'row' }, h('a', { href: `#/service/${encodeURIComponent(st.service)}`, class: 'service-link' }, st.service)),
      h('td', { class: 'status-cell' }, badge(o.level, o.text, { class: 'overall-state' })),
      h('td', {}, st.owner || h('span', { class: 'muted' }, '—')),
      h('td', {}, st.tier || h('span', { class: 'muted' }, '—')),
      h('td', { class: 'last-backup' }, st.last_success ? timeEl(st.last_success) : h('span', { class: 'muted' }, 'never'), st.last_run_result === 'failure' ? h('div', {}, badge('bad', 'last run failed')) : null),
      h('td', { class: 'rpo' }, rpoBadge(st), h('div', { class: 'small' }, rpoText(st))),
      h('td', { class: 'last-drill' }, st.last_drill_at ? timeEl(st.last_drill_at) : h('span', { class: 'muted' }, 'never')),
      h('td', { class: 'rto' }, rtoBadge(st), h('div', { class: 'small' }, rtoText(st))),
      h('td', { class: 'alerts num' }, st.firing_alerts > 0 ? badge('bad', `${st.firing_alerts} firing`) : h('span', { class: 'muted' }, 'none')),
      restorer ? h('td', {}, h('a', { class: 'button small', href: `#/restore/${encodeURIComponent(st.service)}`, 'aria-label': `Restore ${st.service}` }, 'Restore…')) : null,
    );
  });
  const table = h(
    'table',
    { class: 'fleet', id: 'fleet' },
    h('caption', {}, 'One row per service. RPO: age of the newest restorable point against the objective. RTO: duration of the last restore drill against the objective.'),
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        ['Service', 'Status', 'Owner', 'Tier', 'Last backup', 'RPO (now / objective)', 'Last drill', 'RTO (measured / objective)', 'Alerts', restorer ? 'Actions' : null]
          .filter(Boolean)
          .map((t) => h('th', { scope: 'col' }, t)),
      ),
    ),
    h('tbody', {}, rows),
  );
  clear(view).append(
    title('Fleet'),
    h(
      'p',
      { class: 'summary', id: 'fleet-summary' },
      `${services.length} service${services.length === 1 ? '' : 's'}: `,
      badge('ok', `${counts.ok} healthy`),
      ' ',
      badge('warn', `${counts.warn} need attention`),
      ' ',
      badge('bad', `${counts.bad} at risk`),
      ' ',
      firing.length ? badge('bad', `${firing.length} alert${firing.length === 1 ? '' : 's'} firing`) : badge('ok', 'no alerts firing'),
    ),
    services.length ? h('div', { class: 'table-wrap' }, table) : h('p', {}, 'No services are visible to this token.'),
    alertsSection(firing),
    h('p', { class: 'muted small' }, `Updated ${formatTime(new Date())}; refreshes every 30 s.`),
  );
  every(30_000, () => {
    if (location.hash === '' || location.hash === '#/' || location.hash === '#') route();
  });
}

function alertsSection(firing) {
  return h(
    'section',
    { class: 'alerts-section', 'aria-labelledby': 'alerts-h' },
    h('h2', { id: 'alerts-h' }, 'Open alerts'),
    firing.length === 0
      ? h('p', { class: 'muted' }, 'No alerts are firing.')
      : h(
          'ul',
          { class: 'alert-list' },
          firing.map((a) =>
            h(
              'li',
              { class: `alert alert-${a.severity === 'critical' ? 'bad' : 'warn'}` },
              badge(a.severity === 'critical' ? 'bad' : 'warn', a.severity || 'alert'),
              ' ',
              h('strong', {}, a.name),
              a.service ? [' · ', h('a', { href: `#/service/${encodeURIComponent(a.service)}` }, a.service)] : ' · daemon',
              ' · since ',
              timeEl(a.since),
              h('div', {}, a.summary),
              a.description ? h('div', { class: 'muted small' }, a.description) : null,
            ),
          ),
        ),
  );
}

// ---------------------------------------------------------------- service

async function serviceView(view, name) {
  const [detail, snapshots, runs, drills, alerts] = await Promise.all([
    api.service(name),
    api.snapshots(name).catch((e) => e),
    api.runs(name).catch((e) => e),
    api.drills(name).catch((e) => e),
    api.alerts(),
  ]);
  const st = detail.status;
  const o = overall(st);
  const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Actions' });
  const jobArea = h('div', { class: 'job-area', 'aria-live': 'polite' });
  if (can(me.role, 'trigger')) {
    actions.append(
      h('button', { type: 'button', id: 'backup-now', onclick: (ev) => startJob(ev.target, jobArea, () => api.backup(name), 'Backup') }, 'Back up now'),
      h('button', { type: 'button', id: 'drill-now', onclick: (ev) => startJob(ev.target, jobArea, () => api.drill(name), 'Drill') }, 'Run a restore drill'),
    );
  }
  if (can(me.role, 'restore'))
    actions.append(h('a', { class: 'button primary', id: 'restore-service', href: `#/restore/${encodeURIComponent(name)}` }, 'Restore…'));

  const snaps = Array.isArray(snapshots) ? [...snapshots].sort((a, b) => parseTime(a.time) - parseTime(b.time)) : [];
  const facts = h(
    'dl',
    { class: 'facts' },
    fact('Status', badge(o.level, o.text)),
    fact('Owner', st.owner || '—'),
    fact('Tier', st.tier || '—'),
    fact('Engine', st.engine),
    fact('Last backup', st.last_success ? timeEl(st.last_success) : 'never'),
    fact('RPO', [rpoBadge(st), ' ', rpoText(st)]),
    fact('Newest restorable point', st.newest_restorable_point ? timeEl(st.newest_restorable_point, { relative: false }) : '—'),
    fact('Next scheduled run', st.next_run ? timeEl(st.next_run) : '—'),
    fact('Last drill', st.last_drill_at ? [timeEl(st.last_drill_at), ' ', st.last_drill_passed ? badge('ok', 'passed') : badge('bad', 'failed')] : 'never'),
    fact('RTO', [rtoBadge(st), ' ', rtoText(st)]),
    fact('Alerts firing', st.firing_alerts > 0 ? badge('bad', String(st.firing_alerts)) : 'none'),
    st.last_error ? fact('Last error', h('span', { class: 'error' }, st.last_error)) : null,
  );

  clear(view).append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/' }, 'Fleet'), ' / ', name),
    title(name),
    actions,
    jobArea,
    facts,
    section('Snapshots', 'snapshots-h', snapshotsPart(name, snapshots, snaps)),
    section('Size and duration over time', 'charts-h', chartsPart(snaps)),
    section('Recent runs', 'runs-h', runsPart(runs)),
    section('Restore drills', 'drills-h', drillsPart(name, drills)),
    section('Runbook', 'runbook-h', runbookPart(name)),
    alertsSection(alerts.filter((a) => a.state === 'firing' && a.service === name)),
    section('Policy', 'policy-h', h('details', {}, h('summary', {}, 'Effective policy (JSON)'), h('pre', { class: 'policy' }, JSON.stringify(detail.policy, null, 2)))),
  );
}

function fact(label, value) {
  return h('div', { class: 'fact' }, h('dt', {}, label), h('dd', {}, value));
}

function section(text, id, ...content) {
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, text), content);
}

function snapshotsPart(name, raw, snaps) {
  if (raw instanceof Error) return h('p', { class: 'error' }, `Snapshots cannot be listed: ${raw.message}`);
  if (snaps.length === 0) return h('p', { class: 'muted' }, 'No snapshots yet.');
  const points = snaps.map((sn) => ({
    t: parseTime(sn.time),
    level: sn.summary?.errors > 0 ? 'bad' : 'ok',
    label: `${sn.short_id} · ${formatTime(parseTime(sn.time))} · ${formatBytes(sn.summary?.total_bytes)}`,
  }));
  const restorer = can(me.role, 'restore');
  const browser = h('div', { class: 'browser', 'aria-live': 'polite' });
  const rows = [...snaps].reverse().map((sn) =>
    h(
      'tr',
      {},
      h('td', {}, timeEl(sn.time, { relative: false })),
      h('td', {}, h('code', { title: sn.id }, sn.short_id)),
      h('td', { class: 'num' }, sn.summary?.total_files ?? '—'),
      h('td', { class: 'num' }, formatBytes(sn.summary?.total_bytes)),
      h('td', { class: 'num' }, formatBytes(sn.summary?.data_added)),
      h('td', { class: 'num' }, formatDuration(sn.summary?.duration_s)),
      restorer
        ? h(
            'td',
            { class: 'row-actions' },
            h('button', { type: 'button', class: 'small', onclick: () => browse(browser, name, sn, '/') }, 'Browse'),
            ' ',
            h('a', { class: 'button small', href: `#/restore/${encodeURIComponent(name)}?snapshot=${encodeURIComponent(sn.id)}` }, 'Restore this'),
          )
        : null,
    ),
  );
  const head = ['Time (UTC)', 'Snapshot', 'Files', 'Size', 'Added', 'Duration'];
  if (restorer) head.push('Actions');
  return [
    timeline(points, { title: `Timeline of ${snaps.length} snapshots from ${formatTime(points[0].t)} to ${formatTime(points.at(-1).t)}` }),
    h('p', { class: 'muted small' }, `${snaps.length} snapshot${snaps.length === 1 ? '' : 's'}; newest ${ago(points.at(-1).t)}.`),
    h('div', { class: 'table-wrap' }, h('table', { class: 'snapshots' }, h('thead', {}, h('tr', {}, head.map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows))),
    browser,
  ];
}

async function browse(box, name, sn, path) {
  clear(box).append(h('p', { class: 'loading' }, `Listing ${path}…`));
  try {
    const listing = await api.files(name, sn.id, path);
    const up = path === '/' ? null : path.replace(/\/[^/]+\/?$/, '') || '/';
    const rows = listing.entries.map((e) => {
      const base = e.path.split('/').pop();
      const isDir = e.type === 'dir';
      return h(
        'tr',
        {},
        h('td', {}, isDir ? h('button', { type: 'button', class: 'link', onclick: () => browse(box, name, sn, e.path) }, `${base}/`) : base),
        h('td', {}, e.type),
        h('td', { class: 'num' }, isDir ? '' : formatBytes(e.size)),
        h('td', {}, e.mtime ? formatTime(parseTime(e.mtime)) : ''),
        h('td', {}, h('button', { type: 'button', class: 'small', onclick: (ev) => download(ev.target, name, sn, e.path) }, isDir ? 'Download .tar' : 'Download')),
      );
    });
    clear(box).append(
      h('h3', {}, `Snapshot ${sn.short_id}: `, h('code', {}, path)),
      up ? h('button', { type: 'button', class: 'small', onclick: () => browse(box, name, sn, up) }, '↑ Up') : null,
      h('button', { type: 'button', class: 'small', onclick: () => clear(box) }, 'Close'),
      h('table', { class: 'files' }, h('thead', {}, h('tr', {}, ['Name', 'Type', 'Size', 'Modified', ''].map((t) => h('th', { scope: 'col' }, t)))), h('tbody', {}, rows)),
    );
  } catch (e) {
    if (e.status !== 401) clear(box).append(h('p', { class: 'error', role: 'alert' }, e.message));
  }
}

async function download(button, name, sn, path) {
  button.disabled = true;
  const old = button.textContent;
  button.textContent = 'Downloading…';
  try {
    const blob = await api.download(name, sn.id, path);
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: (path.split('/').pop() || name) + (blob.type === 'application/x-tar' ? '.tar' : '') });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (e) {
    if (e.status !== 401) alert(`Download failed: ${e.message}`);
  } finally {
    button.disabled = false;
    button.textContent = old;
  }
}

function chartsPart(snaps) {
  if (snaps.length === 0) return h('p', { class: 'muted' }, 'No snapshots yet.');
  const pts = (f) => snaps.filter((sn) => sn.summary).map((sn) => ({ t: parseTime(sn.time), v: f(sn.summary) }));
  const size = [
    { name: 'Total size', class: 's1', points: pts((m) => m.total_bytes) },
    { name: 'Added to the repository', class: 's2', points: pts((m) => m.data_added) },
  ];
  const duration = [{ name: 'Backup duration', class: 's1', points: pts((m) => m.duration_s) }];
  return h(
    'div',
    { class: 'charts' },
    h('figure', {}, lineChart(size, { title: 'Snapshot size over time', format: formatBytes }), h('figcaption', {}, 'Size per snapshot', legend(size))),
    h('figure', {}, lineChart(duration, { title: 'Backup duration over time', format: formatDuration }), h('figcaption', {}, 'Duration per snapshot', legend(duration))),
  );
}

function runsPart(runs) {
  if (runs instanceof Error) return h('p', { class: 'error' }, runs.message);
  if (runs.length === 0) return h('p', { class: 'muted' }, 'No runs recorded by the daemon or the server yet.');
  const level = { success: 'ok', warnings: 'warn', failure: 'bad', cancelled: 'warn', running: 'info' };
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'runs' },
      h('thead', {}, h('tr', {}, ['Started', 'Kind', 'Result', 'Duration', 'Size', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
      h(
        'tbody',
        {},
        runs.slice(0, 30).map((r) =>
          h(
            'tr',
            {},
            h('td', {}, timeEl(r.started_at)),
            h('td', {}, r.kind),
            h('td', {}, badge(level[r.result] ?? 'info', r.result)),
            h('td', { class: 'num' }, formatDuration(r.duration_seconds)),
            h('td', { class: 'num' }, r.total_size ? formatBytes(r.total_size) : '—'),
            h('td', { class: 'error small' }, r.error || ''),
          ),
        ),
      ),
    ),
  );
}

function drillsPart(name, drills) {
  if (drills instanceof Error) return h('p', { class: 'error' }, drills.message);
  if (drills.length === 0) return h('p', { class: 'muted' }, 'No restore drill has run yet.');
  const report = h('div', { class: 'report-box', 'aria-live': 'polite' });
  const show = async (d) => {
    clear(report).append(h('p', { class: 'loading' }, 'Loading the report…'));
    try {
      const html = await api.drillReport(name, d.id);
      clear(report).append(h('div', { class: 'report-head' }, h('h3', {}, `Drill ${d.id}`), h('button', { type: 'button', class: 'small', onclick: () => clear(report) }, 'Close')), sanitizedHtml(html));
    } catch (e) {
      if (e.status !== 401) clear(report).append(h('p', { class: 'error' }, e.message));
    }
  };
  return [
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'drills' },
        h('thead', {}, h('tr', {}, ['Finished', 'Result', 'RTO (measured / objective)', 'RPO at drill', 'Snapshot', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          drills.map((d) =>
            h(
              'tr',
              {},
              h('td', {}, timeEl(d.finished_at ?? d.started_at)),
              h('td', {}, d.passed ? badge('ok', 'passed') : badge('bad', 'failed'), d.failure ? h('div', { class: 'error small' }, d.failure) : null),
              h('td', {}, `${formatDuration(d.rto_seconds)} / ${formatDuration(d.rto_objective_seconds)}`),
              h('td', {}, formatDuration(d.rpo_seconds)),
              h('td', {}, d.snapshot_id ? h('code', { title: d.snapshot_id }, String(d.snapshot_id).slice(0, 8)) : '—'),
              h('td', {}, h('button', { type: 'button', class: 'small', onclick: () => show(d) }, 'View report')),
            ),
          ),
        ),
      ),
    ),
    report,
  ];
}

function runbookPart(name) {
  const body = h('div', { class: 'runbook' });
  const details = h('details', { id: 'runbook' }, h('summary', {}, 'Show the runbook (how to restore this service by hand)'), body);
  let loaded = false;
  details.addEventListener('toggle', async () => {
    if (!details.open || loaded) return;
    loaded = true;
    body.append(h('p', { class: 'loading' }, 'Loading…'));
    try {
      const html = await api.runbook(name);
      clear(body).append(sanitizedHtml(html));
    } catch (e) {
      loaded = false;
      if (e.status !== 401) clear(body).append(h('p', { class: 'error' }, e.message));
    }
  });
  return details;
}

// ---------------------------------------------------------------- jobs

const JOB_LEVEL = { running: 'info', succeeded: 'ok', failed: 'bad' };

// Starts a job from a button and follows it in `area` until it ends.
async function startJob(button, area, startFn, what) {
  button.disabled = true;
  try {
    const { job } = await startFn();
    followJob(area, job, what);
  } catch (e) {
    if (e.status !== 401) clear(area).append(h('p', { class: 'error', role: 'alert' }, `${what} could not start: ${e.message}`));
  } finally {
    button.disabled = false;
  }
}

function jobCard(j, what) {
  const level = JOB_LEVEL[j.state] ?? 'info';
  const words = { running: 'running…', succeeded: 'succeeded', failed: 'failed' };
  return h(
    'div',
    { class: ['job-card', `job-${j.state}`], id: `job-${j.id}`, dataset: { state: j.state, job: j.id } },
    h('p', {}, badge(level, `${what} ${words[j.state] ?? j.state}`, { class: 'job-state' }), ' ', h('a', { href: `#/job/${j.id}` }, `job ${j.id}`), j.state === 'running' ? '' : ` · ${formatDuration(j.duration_seconds)}`),
    j.error ? h('p', { class: 'error' }, j.error) : null,
    j.output && j.state !== 'running' ? h('details', {}, h('summary', {}, 'Output'), h('pre', {}, JSON.stringify(j.output, null, 2))) : null,
  );
}

function followJob(area, id, what) {
  const tick = async () => {
    try {
      const j = await api.job(id);
      clear(area).append(jobCard(j, what));
      if (j.state !== 'running') {
        clearInterval(timer);
        timers = timers.filter((t) => t !== timer);
      }
    } catch (e) {
      clearInterval(timer);
      if (e.status !== 401) clear(area).append(h('p', { class: 'error' }, e.message));
    }
  };
  const timer = setInterval(tick, 1000);
  timers.push(timer);
  tick();
}

async function jobsView(view) {
  const jobs = await api.jobs();
  const label = { backup: 'Backup', drill: 'Drill', restore: 'Restore', 'fleet-restore': 'Fleet restore', forget: 'Forget' };
  clear(view).append(
    title('Jobs'),
    h('p', { class: 'muted' }, 'Backups, drills and restores started through the server since it started (newest first).'),
    jobs.length === 0
      ? h('p', {}, 'No jobs yet.')
      : h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'jobs' },
            h('thead', {}, h('tr', {}, ['Started', 'Kind', 'Services', 'By', 'State', 'Duration', 'Job'].map((t) => h('th', { scope: 'col' }, t)))),
            h(
              'tbody',
              {},
              jobs.map((j) =>
                h(
                  'tr',
                  {},
                  h('td', {}, timeEl(j.started_at)),
                  h('td', {}, label[j.kind] ?? j.kind),
                  h('td', {}, j.services.join(', ')),
                  h('td', {}, j.started_by),
                  h('td', {}, badge(JOB_LEVEL[j.state] ?? 'info', j.state)),
                  h('td', { class: 'num' }, j.state === 'running' ? '…' : formatDuration(j.duration_seconds)),
                  h('td', {}, h('a', { href: `#/job/${j.id}` }, j.id)),
                ),
              ),
            ),
          ),
        ),
  );
  if (jobs.some((j) => j.state === 'running')) every(2000, () => location.hash === '#/jobs' && route());
}

async function jobView(view, id) {
  const j = await api.job(id);
  const area = h('div', { class: 'job-area', 'aria-live': 'polite' });
  clear(view).append(
    h('p', { class: 'crumbs' }, h('a', { href: '#/jobs' }, 'Jobs'), ' / ', id),
    title(`Job ${id}`),
    h('p', {}, `${j.kind} of ${j.services.join(', ')}, started by ${j.started_by} `, timeEl(j.started_at)),
    area,
  );
  followJob(area, id, j.kind[0].toUpperCase() + j.kind.slice(1));
}

// ---------------------------------------------------------------- restore

async function restoreWizard(view, preselected) {
  const query = new URLSearchParams(location.hash.split('?')[1] ?? '');
  preselected = preselected?.split('?')[0];
  const services = (await api.services()).map((x) => x.service);
  const form = h('form', { class: 'wizard', id: 'restore-form', novalidate: true });
  const serviceSel = h('select', { id: 'restore-service-select', name: 'service', required: true }, h('option', { value: '' }, '— choose a service —'), services.map((n) => h('option', { value: n, selected: n === preselected }, n)));

  const pointLatest = h('input', { type: 'radio', name: 'point', id: 'point-latest', value: 'latest', checked: true });
  const pointSnap = h('input', { type: 'radio', name: 'point', id: 'point-snapshot', value: 'snapshot' });
  const pointTime = h('input', { type: 'radio', name: 'point', id: 'point-time', value: 'time' });
  const snapSel = h('select', { id: 'restore-snapshot', name: 'snapshot', 'aria-label': 'Snapshot' });
  const timeInput = h('input', { type: 'datetime-local', id: 'restore-time', name: 'time', step: 1, 'aria-label': 'Point in time (UTC)' });
  const snapInfo = h('p', { class: 'muted small', 'aria-live': 'polite' });

  const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
  const target = h('input', { type: 'text', id: 'restore-target', name: 'target', required: true, pattern: '[A-Za-z0-9][A-Za-z0-9._-]{0,127}', value: `restore-${stamp}`, 'aria-describedby': 'target-help', autocomplete: 'off', spellcheck: 'false' });
  const summary = h('p', { id: 'restore-summary', class: 'summary-box' });
  const error = h('p', { class: 'error', role: 'alert', id: 'restore-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary', id: 'restore-start' }, 'Start restore');
  const area = h('div', { class: 'job-area', id: 'restore-job', 'aria-live': 'polite' });
  const again = h('button', { type: 'button', id: 'restore-again', hidden: true, onclick: () => route() }, 'Start another restore');

  let snapshots = [];
  const loadSnapshots = async () => {
    clear(snapSel);
    snapshots = [];
    const name = serviceSel.value;
    if (!name) {
      snapInfo.textContent = '';
      return update();
    }
    snapInfo.textContent = 'Loading snapshots…';
    update();
    try {
      snapshots = (await api.snapshots(name)).sort((a, b) => parseTime(b.time) - parseTime(a.time));
      snapInfo.textContent = snapshots.length ? `${snapshots.length} snapshot${snapshots.length === 1 ? '' : 's'}, newest ${ago(parseTime(snapshots[0].time))}.` : 'This service has no snapshot: there is nothing to restore yet.';
      for (const sn of snapshots)
        snapSel.append(h('option', { value: sn.id, selected: sn.id === query.get('snapshot') }, `${formatTime(parseTime(sn.time))} · ${sn.short_id} · ${formatBytes(sn.summary?.total_bytes)}`));
      if (query.get('snapshot') && snapshots.some((sn) => sn.id === query.get('snapshot'))) pointSnap.checked = true;
    } catch (e) {
      if (e.status !== 401) snapInfo.textContent = `Snapshots cannot be listed: ${e.message}`;
    }
    update();
  };

  // The chosen point as the API wants it: undefined (latest) or RFC 3339.
  const chosenTime = () => {
    if (pointSnap.checked) {
      const sn = snapshots.find((x) => x.id === snapSel.value);
      return sn ? sn.time : null;
    }
    if (pointTime.checked) {
      if (!timeInput.value) return null;
      const d = new Date(`${timeInput.value.length === 16 ? `${timeInput.value}:00` : timeInput.value}Z`);
      return Number.isNaN(d.getTime()) ? null : isoUtc(d);
    }
    return undefined;
  };

  const update = () => {
    snapSel.disabled = !pointSnap.checked;
    timeInput.disabled = !pointTime.checked;
    const t = chosenTime();
    const name = serviceSel.value;
    const okTarget = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(target.value);
    clear(summary).append(
      ...[
        name ? ['Restore ', h('strong', {}, name), ' '] : 'Choose a service; ',
        t === undefined ? 'as of its newest snapshot' : t ? ['as it was at ', h('strong', {}, formatTime(parseTime(t)))] : 'at a point still to choose',
        ' into the folder ',
        h('code', {}, `${okTarget ? target.value : '?'}/${name || '<service>'}`),
        ' below the server’s restore root.',
      ].flat(),
    );
    submit.disabled = !name || t === null || !okTarget || snapshots.length === 0;
  };

  serviceSel.addEventListener('change', loadSnapshots);
  for (const el of [pointLatest, pointSnap, pointTime, snapSel, timeInput, target]) {
    el.addEventListener('change', update);
    el.addEventListener('input', update);
  }

  form.append(
    h('fieldset', {}, h('legend', {}, h('span', { class: 'step' }, '1'), ' Service'), h('label', { for: 'restore-service-select' }, 'Service to restore'), serviceSel, snapInfo),
    h(
      'fieldset',
      {},
      h('legend', {}, h('span', { class: 'step' }, '2'), ' Point in time'),
      h('div', { class: 'choice' }, pointLatest, h('label', { for: 'point-latest' }, 'The newest snapshot')),
      h('div', { class: 'choice' }, pointSnap, h('label', { for: 'point-snapshot' }, 'A snapshot:'), ' ', snapSel),
      h('div', { class: 'choice' }, pointTime, h('label', { for: 'point-time' }, 'The state at a moment (UTC):'), ' ', timeInput),
      h('p', { class: 'help' }, 'For a moment, cairn restores the newest snapshot taken at or before it (and, for databases with continuous archiving, replays up to it).'),
    ),
    h(
      'fieldset',
      {},
      h('legend', {}, h('span', { class: 'step' }, '3'), ' Target'),
      h('label', { for: 'restore-target' }, 'Folder name'),
      target,
      h('p', { id: 'target-help', class: 'help' }, 'A new folder below the server’s restore root (letters, digits, “.”, “_”, “-”). Nothing is overwritten: a folder that exists is refused.'),
    ),
    h('fieldset', {}, h('legend', {}, h('span', { class: 'step' }, '4'), ' Review'), summary, error, submit),
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const name = serviceSel.value;
    const t = chosenTime();
    if (!name || t === null) return;
    submit.disabled = true;
    try {
      const body = { target: target.value };
      if (t) body.to_time = t;
      const { job } = await api.restore(name, body);
      followJob(area, job, 'Restore');
      for (const el of form.elements) el.disabled = true;
      again.hidden = false;
    } catch (e) {
      if (e.status === 401) return;
      error.textContent = `The restore could not start: ${e.message}`;
      error.hidden = false;
      submit.disabled = false;
    }
  });

  clear(view).append(
    title('Restore'),
    h('p', { class: 'lead' }, 'Restore a service’s files or dump onto the server, into a new folder. Follow it here until it finishes.'),
    form,
    area,
    again,
  );
  update();
  await loadSnapshots();
}

// ---------------------------------------------------------------- audit

async function auditView(view) {
  const entries = await api.audit(200);
  clear(view).append(
    title('Audit log'),
    h('p', { class: 'muted' }, 'The newest 200 entries of the hash-chained audit log (verify it with cairn audit verify).'),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'audit' },
        h('thead', {}, h('tr', {}, ['Time', 'Principal', 'Role', 'Action', 'Service', 'Object', 'Result', 'Source'].map((t) => h('th', { scope: 'col' }, t)))),
        h(
          'tbody',
          {},
          [...entries].reverse().map((e) =>
            h(
              'tr',
              {},
              h('td', {}, e.time ? formatTime(parseTime(e.time)) : ''),
              h('td', {}, e.principal ?? ''),
              h('td', {}, e.role ?? ''),
              h('td', {}, e.action ?? ''),
              h('td', {}, e.service ?? ''),
              h('td', { class: 'small' }, e.object ?? ''),
              h('td', {}, String(e.result ?? '').startsWith('ok') ? badge('ok', 'ok') : badge('bad', e.result ?? '')),
              h('td', { class: 'small' }, e.source ?? ''),
            ),
          ),
        ),
      ),
    ),
  );
}

start();
