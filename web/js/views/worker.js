// Worker page: status and actions, enabled switch, CPU / memory charts (history +
// live), instances, live output, the full effective config, restart history.
import { h, listen, replace, setText } from '../dom.js';
import { icon } from '../icons.js';
import * as fmt from '../format.js';
import { pids, restartsTotal, tone } from '../store.js';
import { actionButton, emptyState, segmented, setStatus, spinner, statusPill, switchInput } from '../components/bits.js';
import { LineChart } from '../components/charts.js';
import { LogView } from '../components/logview.js';
import { action, showsStart } from '../actions.js';
import { workerSchema } from './editor.js';

const TABS = [['overview', 'Overview'], ['logs', 'Logs'], ['config', 'Config'], ['history', 'History']];
const HISTORY_LIMIT = 100;
// Restart history kinds -> status tone (the colours of the status pills).
const RESTART_TONES = { start: 'ok', exit: 'muted', crash: 'err', restart: 'warn', stop: 'muted', backoff: 'pending', failed: 'err' };

function timeFmt(t, long, span = 3600) {
  if (long) return fmt.datetime(t);
  return span < 900 ? fmt.clock(t, false) : fmt.clock(t, false).slice(0, 5);
}

export class WorkerView {
  constructor(app, route) {
    this.app = app;
    this.name = route.arg;
    this.tab = TABS.some(([id]) => id === route.query.tab) ? route.query.tab : 'overview';
    this.offs = [];
    this.range = '1h';
    this.panels = {};
    this.el = h('section', { class: 'view view-worker' });
  }

  mount() {
    const app = this.app;
    const getW = () => app.workers.get(this.name);
    this.buttons = ['worker.start', 'worker.stop', 'worker.restart', 'worker.reload', 'worker.logs', 'worker.edit', 'worker.delete']
      .map((id) => actionButton(app, id, getW, { variant: id === 'worker.start' || id === 'worker.stop' || id === 'worker.restart' ? 'full' : 'icon' }));
    app.shell.setHeader(this.name, '', [h('div', { class: 'btn-row' }, this.buttons)]);

    this.pill = statusPill('stopped');
    this.enabled = switchInput({ label: 'Enabled', onchange: () => app.perform(action('worker.toggle'), getW()) });
    this.facts = h('dl', { class: 'facts' });
    const summary = h('div', { class: 'summary card' },
      h('div', { class: 'summary-main' }, h('a', { class: 'back-link', href: '#/workers' }, icon('back'), 'Workers'), this.pill, this.enabled),
      this.facts);

    const tablist = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Worker sections' });
    this.tabButtons = {};
    for (const [id, label] of TABS) {
      const b = h('button', {
        type: 'button', role: 'tab', id: `tab-${id}`, 'aria-controls': `panel-${id}`, class: 'tab', text: label,
        onclick: () => app.go(`/workers/${encodeURIComponent(this.name)}${id === 'overview' ? '' : `?tab=${id}`}`),
      });
      this.tabButtons[id] = b;
      tablist.append(b);
    }
    tablist.addEventListener('keydown', (ev) => {
      const ids = TABS.map(([id]) => id);
      const i = ids.indexOf(this.tab);
      if (ev.key === 'ArrowRight' || ev.key === 'ArrowLeft') {
        ev.preventDefault();
        const next = ids[(i + (ev.key === 'ArrowRight' ? 1 : ids.length - 1)) % ids.length];
        this.tabButtons[next].focus();
        this.tabButtons[next].click();
      }
    });
    this.panelBox = h('div', { class: 'tab-panels' });
    this.el.replaceChildren(summary, tablist, this.panelBox);

    this.offs.push(
      listen(app.workers, 'change', (ev) => { if (ev.detail.names.includes(this.name)) this.render(); }),
      listen(app.workers, 'reset', () => this.render()),
      listen(app.workers, 'stats', () => this.onStats()),
    );
    this.timer = setInterval(() => {
      this.renderFacts();
      this.tickHistory();
    }, 1000);
    this.showTab(this.tab);
    this.render();
  }

  destroy() {
    for (const off of this.offs) off();
    clearInterval(this.timer);
    clearTimeout(this.histTimer);
    this.histBody = null;
    for (const c of [this.cpuChart, this.memChart]) if (c) c.destroy();
  }

  update(route) {
    if (route.arg !== this.name) return false;
    const tab = TABS.some(([id]) => id === route.query.tab) ? route.query.tab : 'overview';
    this.showTab(tab);
    return true;
  }

  stream() {
    return { logs: [this.name], tail: this.app.settings.get('general', 'tail_lines', 200) };
  }

  currentWorker() {
    return this.app.workers.get(this.name);
  }

  onLog(d) {
    if (d.worker !== this.name) return;
    for (const view of [this.recent, this.logView]) {
      if (!view) continue;
      if (d.backlog) view.setLines(d.lines, d.worker);
      else view.append(d.lines, d.worker);
    }
  }

  // ---------------------------------------------------------------- tabs
  showTab(tab) {
    this.tab = tab;
    for (const [id, b] of Object.entries(this.tabButtons)) {
      const on = id === tab;
      b.setAttribute('aria-selected', on ? 'true' : 'false');
      b.tabIndex = on ? 0 : -1;
      b.classList.toggle('active', on);
    }
    if (!this.panels[tab]) {
      const panel = h('div', { class: 'tab-panel', role: 'tabpanel', id: `panel-${tab}`, 'aria-labelledby': `tab-${tab}` });
      this.panels[tab] = panel;
      this.panelBox.append(panel);
      this[`build_${tab}`](panel);
    }
    for (const [id, p] of Object.entries(this.panels)) p.hidden = id !== tab;
    if (tab === 'history' && (this.histStale || !this.histLoaded)) this.loadRestarts();
    if (tab === 'logs' && this.logView) this.logView.setFollow(this.logView.follow);
  }

  build_overview(panel) {
    const app = this.app;
    this.cpuChart = new LineChart({ label: 'CPU over time', format: (v) => fmt.percent(v, v < 10 ? 1 : 0), minMax: 5, timeFormat: timeFmt });
    this.memChart = new LineChart({ label: 'Memory over time', format: (v) => fmt.bytes(v, 0), minMax: 1024 * 1024, timeFormat: timeFmt, color: null });
    const rangeSeg = segmented({
      name: 'hrange', label: 'Range', value: this.range,
      options: [{ value: '1h', label: '1 h' }, { value: '24h', label: '24 h' }],
      onchange: (v) => { this.range = v; this.loadHistory(); },
    });
    this.instBody = h('tbody');
    this.recent = new LogView({ max: 300, empty: 'No output yet.', label: `Latest output of ${this.name}` });
    panel.append(
      h('div', { class: 'charts-head' }, h('h2', { class: 'section-title', text: 'Resources' }), rangeSeg),
      h('div', { class: 'chart-grid' },
        h('div', { class: 'card chart-card' }, h('div', { class: 'card-title' }, icon('cpu'), 'CPU'), this.cpuChart.el),
        h('div', { class: 'card chart-card' }, h('div', { class: 'card-title' }, icon('memory'), 'Memory'), this.memChart.el)),
      h('h2', { class: 'section-title', text: 'Instances' }),
      h('div', { class: 'card table-card' }, h('table', { class: 'itable' },
        h('thead', null, h('tr', null, ['#', 'Status', 'PID', 'Uptime', 'CPU', 'RAM', 'Restarts', 'Last exit'].map((t, i) => h('th', { scope: 'col', class: i >= 3 && i <= 6 ? 'c-num' : null, text: t })))),
        this.instBody)),
      h('div', { class: 'section-row' }, h('h2', { class: 'section-title', text: 'Latest output' }),
        h('a', { class: 'btn btn-sm btn-ghost', href: `#/logs/${encodeURIComponent(this.name)}` }, icon('activity'), 'Open in Live Logs')),
      h('div', { class: 'card log-card log-card-short' }, this.recent.wrap));
    this.loadHistory();
    this.renderInstances();
  }

  build_logs(panel) {
    this.logView = new LogView({ max: 5000, label: `Output of ${this.name}` });
    if (this.recent) this.logView.setLines(this.recent.lines.map((l) => ({ ...l })), this.name);
    panel.append(
      h('div', { class: 'section-row' },
        h('p', { class: 'muted', text: `The last ${this.app.settings.get('general', 'tail_lines', 200)} lines, then live.` }),
        h('div', { class: 'btn-row' },
          h('a', { class: 'btn btn-sm', href: `#/logs/${encodeURIComponent(this.name)}` }, icon('activity'), 'Live Logs tools'),
          h('a', { class: 'btn btn-sm', href: this.app.api.downloadUrl(this.name), download: `${this.name}.log` }, icon('download'), 'Download'),
          h('button', { type: 'button', class: 'btn btn-sm danger', onclick: () => this.clearLogs() }, icon('eraser'), 'Delete log files'))),
      h('div', { class: 'card log-card' }, this.logView.wrap));
  }

  async clearLogs() {
    const ok = await this.app.confirm({ title: `Delete the logs of ${this.name}?`, message: 'The log file is emptied and rotated files are deleted.', confirmLabel: 'Delete logs', danger: true });
    if (!ok) return;
    try {
      await this.app.api.clearLogs(this.name);
      for (const v of [this.logView, this.recent]) if (v) v.clear();
      this.app.toasts.show(`Logs of ${this.name} deleted`, { tone: 'ok' });
    } catch (err) {
      this.app.toasts.error(err);
    }
  }

  async build_config(panel) {
    panel.append(h('div', { class: 'loading' }, spinner(), ' Loading the config…'));
    let info;
    let schema;
    try {
      [info, schema] = await Promise.all([this.app.api.worker(this.name), workerSchema(this.app.api)]);
    } catch (err) {
      replace(panel, h('div', { class: 'form-error', role: 'alert', text: err.message }));
      return;
    }
    const showAll = switchInput({ label: 'Show defaults', onchange: (on) => panel.classList.toggle('show-defaults', on) });
    const sections = new Map();
    for (const opt of schema) {
      if (!sections.has(opt.section)) sections.set(opt.section, []);
      sections.get(opt.section).push(opt);
    }
    const cards = [];
    for (const [section, opts] of sections) {
      const rows = opts.map((opt) => {
        const value = info.options[opt.name];
        const isDefault = JSON.stringify(value ?? null) === JSON.stringify(opt.default ?? null) || (Array.isArray(value) && !value.length && opt.default == null);
        return h('div', { class: `cfg-row ${isDefault ? 'is-default' : 'is-set'}` },
          h('dt', null, h('code', { text: opt.name })), h('dd', null, renderValue(value)));
      });
      const setCount = rows.filter((r) => r.classList.contains('is-set')).length;
      cards.push(h('section', { class: `card cfg-card ${setCount ? '' : 'all-default'}` },
        h('h3', { class: 'card-title' }, section, setCount ? h('span', { class: 'chip', text: `${setCount} set` }) : null), h('dl', { class: 'cfg-list' }, rows)));
    }
    const envBox = h('div', { class: 'env-box' });
    const envBtn = h('button', { type: 'button', class: 'btn btn-sm', onclick: () => this.loadEnv(envBox, envBtn) }, icon('eye'), 'Show the environment of instance #1');
    replace(panel,
      h('div', { class: 'section-row' }, h('p', { class: 'muted' }, 'Every option with its effective value. Origin: ', h('code', { text: originLabel(info.origin) })),
        h('div', { class: 'btn-row' }, showAll, h('a', { class: 'btn btn-sm', href: `#/workers/${encodeURIComponent(this.name)}/edit` }, icon('edit'), 'Edit'))),
      h('div', { class: 'cfg-grid' }, cards),
      h('h2', { class: 'section-title', text: 'Environment' }), envBtn, envBox);
  }

  async loadEnv(box, btn) {
    btn.disabled = true;
    try {
      const env = await this.app.api.workerEnv(this.name, 1);
      const vars = env.env || env.environment || env;
      const entries = Array.isArray(vars) ? vars.map((s) => String(s).split(/=(.*)/s)) : Object.entries(vars || {});
      replace(box, h('dl', { class: 'env-list card' }, entries.sort((a, b) => String(a[0]).localeCompare(String(b[0])))
        .map(([k, v]) => [h('dt', null, h('code', { text: k })), h('dd', { class: 'mono', text: v == null ? '' : String(v) })])));
      btn.hidden = true;
    } catch (err) {
      replace(box, h('div', { class: 'form-error', role: 'alert', text: err.message }));
      btn.disabled = false;
    }
  }

  build_history(panel) {
    this.histSummary = h('div', { class: 'hist-summary' });
    this.histBody = h('div', { class: 'hist-body' }, h('div', { class: 'loading' }, spinner(), ' Loading the restart history…'));
    panel.append(
      h('div', { class: 'section-row' },
        h('h2', { class: 'section-title', text: 'Restart history' }),
        h('div', { class: 'btn-row' }, this.histSummary,
          h('button', { type: 'button', class: 'btn btn-sm btn-ghost', onclick: () => this.loadRestarts() }, icon('reload'), 'Refresh'))),
      h('p', { class: 'muted small', text: 'Starts, exits, crashes, restarts and stops of every instance, newest first. It refreshes when the worker changes state.' }),
      this.histBody);
  }

  /** The restart history is fetched when the History tab shows and again (debounced) when
   *  the worker changes state on the stream; hidden, it is only marked stale. */
  renderHistory() {
    if (!this.histBody) return;
    if (this.tab !== 'history') {
      this.histStale = true;
      return;
    }
    clearTimeout(this.histTimer);
    this.histTimer = setTimeout(() => {
      if (this.tab === 'history') this.loadRestarts();
      else this.histStale = true;
    }, this.histLoaded ? 400 : 0);
  }

  async loadRestarts() {
    if (!this.histBody) return;
    this.histStale = false;
    const seq = (this.histSeq = (this.histSeq || 0) + 1);
    let data;
    try {
      data = await this.app.api.restartHistory(this.name, HISTORY_LIMIT);
    } catch (err) {
      if (seq !== this.histSeq || !this.histBody) return;
      if (err.status === 401 || err.status === 423) return;
      if (err.status === 404 && !this.currentWorker()) replace(this.histBody, h('p', { class: 'muted', text: `No worker named ${this.name}.` }));
      else if (err.status === 404) this.noRestartHistory();
      else replace(this.histBody, h('div', { class: 'form-error', role: 'alert', text: `Cannot load the restart history: ${err.message}${err.hint ? ` — ${err.hint}` : ''}` }));
      return;
    }
    if (seq !== this.histSeq || !this.histBody) return;
    this.histLoaded = true;
    if (!data) this.noRestartHistory();
    else this.renderRestarts(data.events);
  }

  /** An older daemon: no restart history endpoint (404, or the CPU history answering). */
  noRestartHistory() {
    this.histLoaded = true;
    this.histTimes = [];
    replace(this.histSummary);
    replace(this.histBody, h('div', { class: 'card hist-empty' },
      h('p', { class: 'muted', text: 'This daemon does not keep a restart history yet (it needs a newer apm). The instances table on the Overview tab shows each instance\'s last exit.' })));
  }

  renderRestarts(list) {
    const events = list.filter((e) => e && typeof e === 'object');
    const counts = {};
    for (const e of events) counts[e.kind] = (counts[e.kind] || 0) + 1;
    replace(this.histSummary, ['crash', 'restart', 'failed'].filter((k) => counts[k]).map((k) =>
      h('span', { class: `pill tone-${RESTART_TONES[k]}` }, h('span', { class: 'dot' }), fmt.plural(counts[k], k === 'crash' ? 'crash' : k, k === 'crash' ? 'crashes' : undefined))));
    if (!events.length) {
      this.histTimes = [];
      replace(this.histBody, h('div', { class: 'card hist-empty' }, h('p', { class: 'muted', text: 'Nothing yet: the history starts when an instance starts.' })));
      return;
    }
    const now = this.app.now();
    this.histTimes = [];
    const rows = events.map((e) => {
      const t = typeof e.time === 'number' && Number.isFinite(e.time) ? e.time : null;
      const when = h('time', { datetime: t == null ? null : new Date(t * 1000).toISOString(), title: fmt.datetime(t), text: fmt.ago(t, now) });
      if (t != null) this.histTimes.push([when, t]);
      const kind = String(e.kind || 'unknown');
      return h('tr', { class: `hist-row kind-${kind.replace(/\W/g, '')}`, dataset: { kind } },
        h('td', { class: 'c-when' }, when),
        h('td', { class: 'c-inst', text: e.instance != null ? `#${e.instance}` : '–' }),
        h('td', null, h('span', { class: `pill tone-${RESTART_TONES[kind] || 'muted'}` }, h('span', { class: 'dot' }), kind)),
        h('td', { class: 'c-pid mono', text: e.pid != null ? String(e.pid) : '–' }),
        h('td', { class: 'c-exit', text: restartExit(e) }),
        h('td', { class: 'c-reason', text: restartReason(e) }),
        h('td', { class: 'c-num c-up', text: typeof e.uptime === 'number' ? fmt.duration(e.uptime) : '–' }));
    });
    const more = events.length >= HISTORY_LIMIT ? h('p', { class: 'muted small', text: `The latest ${HISTORY_LIMIT} events.` }) : null;
    replace(this.histBody, h('div', { class: 'card table-card' }, h('table', { class: 'itable hist-table' },
      h('thead', null, h('tr', null, [['When', 'c-when'], ['Instance', 'c-inst'], ['Event', ''], ['PID', 'c-pid'], ['Exit', 'c-exit'], ['Reason', 'c-reason'], ['Uptime', 'c-num c-up']]
        .map(([t, cls]) => h('th', { scope: 'col', class: cls || null, text: t })))),
      h('tbody', null, rows))), more);
  }

  /** Relative times tick (called by the page's one-second timer, redrawn every 10 s). */
  tickHistory() {
    if (!this.histTimes || this.tab !== 'history') return;
    this.histTick = ((this.histTick || 0) + 1) % 10;
    if (this.histTick) return;
    const now = this.app.now();
    for (const [el, t] of this.histTimes) setText(el, fmt.ago(t, now));
  }

  // ---------------------------------------------------------------- data
  async loadHistory() {
    try {
      const data = await this.app.api.metrics(this.name, this.range);
      this.histInterval = data.interval;
      this.cpuChart.setData(data.t.slice(), data.cpu.slice());
      this.memChart.setData(data.t.slice(), data.memory.slice());
      this.lastPoint = data.t.length ? data.t[data.t.length - 1] : 0;
    } catch (err) {
      if (err.status !== 404) this.app.toasts.error(err, 'History');
    }
  }

  onStats() {
    const w = this.currentWorker();
    if (!w || !this.cpuChart || !this.histInterval) return;
    const now = this.app.now();
    this.renderInstancesLive();
    if (now - (this.lastPoint || 0) < this.histInterval) return;
    this.lastPoint = now;
    const keep = this.range === '24h' ? 1440 : 720;
    this.cpuChart.push(now, this.app.workers.cpu(w), keep);
    this.memChart.push(now, this.app.workers.memory(w), keep);
  }

  render() {
    const w = this.currentWorker();
    if (!w) {
      if (this.app.workers.loaded) {
        replace(this.el, emptyState('layers', `No worker named ${this.name}`, 'It may have been deleted or renamed.', h('a', { class: 'btn', href: '#/workers', text: 'All workers' })));
      }
      return;
    }
    setStatus(this.pill, w.status);
    this.el.dataset.tone = tone(w.status);
    this.enabled.input.checked = !!w.enabled;
    for (const b of this.buttons) b.sync();
    const startable = showsStart(w);
    this.buttons[0].hidden = !startable;
    this.buttons[1].hidden = startable;
    this.app.shell.setSubtitle(`${w.namespace} · ${originLabel(w.origin)}${w.enabled ? '' : ' · disabled'}`);
    this.renderFacts();
    this.renderInstances();
    this.renderHistory();
  }

  renderFacts() {
    const w = this.currentWorker();
    if (!w) return;
    const m = this.app.workers;
    const cfg = w.config || {};
    const command = cfg.cmd || [cfg.exec, ...(cfg.params || [])].filter((x) => x != null).join(' ');
    const facts = [
      ['Instances', `${w.instances_running} / ${w.instances_wanted}`],
      ['Uptime', fmt.duration(m.uptime(w, this.app.now()))],
      ['CPU', fmt.percent(m.cpu(w))],
      ['RAM', fmt.bytes(m.memory(w))],
      ['Restarts', `${restartsTotal(w)} (${(w.restarts && w.restarts.error) || 0} errors)`],
      ['PID', pids(w).join(', ') || '–'],
      ['Command', command || '–'],
    ];
    if (!this.factEls) {
      this.factEls = facts.map(([k]) => {
        const dd = h('dd', { class: k === 'Command' || k === 'PID' ? 'mono' : '' });
        this.facts.append(h('div', { class: `fact fact-${k.toLowerCase()}` }, h('dt', { text: k }), dd));
        return dd;
      });
    }
    facts.forEach(([, v], i) => setText(this.factEls[i], v));
  }

  renderInstances() {
    const w = this.currentWorker();
    if (!w || !this.instBody) return;
    this.instRows = (w.instances || []).map((i) => {
      const cells = { cpu: h('td', { class: 'c-num' }), mem: h('td', { class: 'c-num' }), up: h('td', { class: 'c-num' }) };
      const tr = h('tr', null, h('td', { text: `#${i.index}` }), h('td', null, statusPill(i.status)), h('td', { class: 'mono', text: i.pid == null ? '–' : String(i.pid) }),
        cells.up, cells.cpu, cells.mem, h('td', { class: 'c-num', text: `${i.restarts.clean + i.restarts.error}` }),
        h('td', { text: i.error ? i.error : i.last_exit ? exitText(i.last_exit) : i.next_start_at ? `restarts at ${fmt.clock(i.next_start_at, false)}` : '–' }));
      return { i, cells, tr };
    });
    replace(this.instBody, this.instRows.map((r) => r.tr));
    this.renderInstancesLive();
  }

  renderInstancesLive() {
    const w = this.currentWorker();
    if (!w || !this.instRows) return;
    const now = this.app.now();
    for (const { i, cells } of this.instRows) {
      const st = this.app.workers.instanceStats(w, i.index);
      setText(cells.cpu, fmt.percent(st.cpu));
      setText(cells.mem, fmt.bytes(st.memory));
      setText(cells.up, fmt.duration(i.started_at == null ? null : now - i.started_at));
    }
  }
}

function restartReason(e) {
  const why = e.reason == null ? '' : String(e.reason);
  if (e.kind !== 'backoff' || typeof e.delay !== 'number') return why;
  const wait = e.delay < 60 ? `${e.delay.toFixed(e.delay < 10 ? 1 : 0)} s` : fmt.duration(e.delay);
  return `${why}${why ? ' · ' : ''}next start in ${wait}`;
}

function restartExit(e) {
  if (e.signal) return e.signal;
  if (e.exit_code != null) return `code ${e.exit_code}`;
  return '–';
}

function exitText(e) {
  if (!e) return '–';
  const why = e.signal ? `killed by ${e.signal}` : `exit code ${e.code}`;
  return `${why}${e.oom ? ' (out of memory)' : ''}`;
}

function originLabel(o) {
  if (!o) return '–';
  return o.file ? `${o.kind}: ${o.file}` : o.kind;
}

function renderValue(v) {
  if (v == null || v === '') return h('span', { class: 'muted', text: '—' });
  if (Array.isArray(v)) {
    if (!v.length) return h('span', { class: 'muted', text: '—' });
    return h('ul', { class: 'cfg-values' }, v.map((x) => h('li', { class: 'mono', text: typeof x === 'object' ? JSON.stringify(x) : String(x) })));
  }
  if (typeof v === 'object') return h('pre', { class: 'mono cfg-json', text: JSON.stringify(v, null, 2) });
  if (typeof v === 'boolean') return h('span', { class: `bool ${v ? 'on' : 'off'}`, text: v ? 'yes' : 'no' });
  return h('span', { class: 'mono', text: String(v) });
}
