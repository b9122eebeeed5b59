// Workers page: table or cards, namespace filter (sidebar), status filter, search, sort.
import { h, debounce, listen } from '../dom.js';
import { icon } from '../icons.js';
import { RUNNING_STATES } from '../store.js';
import { COLUMNS, WorkerTable, originText } from '../components/worker-table.js';
import { WorkerCards } from '../components/worker-cards.js';
import { actionButton, emptyState, segmented } from '../components/bits.js';

const DEFAULT_COLUMNS = ['namespace', 'instances', 'uptime', 'cpu', 'cpu_graph', 'memory', 'restarts', 'errors'];
const STATUS_FILTERS = {
  all: () => true,
  running: (w) => w.status === 'running' || w.status === 'partial',
  stopped: (w) => !RUNNING_STATES.has(w.status) && w.status !== 'errored',
  errored: (w) => w.status === 'errored' || (w.restarts && w.restarts.error > 0 && w.status !== 'running'),
};
const NARROW = window.matchMedia('(max-width: 760px)');

export class WorkersView {
  constructor(app, route) {
    this.app = app;
    this.route = route;
    this.sort = { key: 'name', dir: 1 };
    this.search = '';
    this.offs = [];
    this.firstRow = false;
    this.statsDirty = false;
    this.lastSort = 0;
    this.body = h('div', { class: 'workers-body' });
    this.el = h('section', { class: 'view view-workers' }, this.body);
  }

  mount() {
    const app = this.app;
    this.searchInput = h('input', {
      class: 'input search-input', type: 'search', placeholder: 'Search workers', 'aria-label': 'Search workers',
      autocomplete: 'off', spellcheck: 'false', value: this.route.query.q || '',
    });
    this.search = this.searchInput.value;
    const onSearch = debounce(() => { this.search = this.searchInput.value.trim(); this.apply(); }, 80);
    this.searchInput.addEventListener('input', onSearch);
    this.searchInput.addEventListener('keydown', (ev) => {
      if (ev.key === 'Escape') { this.searchInput.value = ''; this.search = ''; this.apply(); this.searchInput.blur(); }
      if (ev.key === 'ArrowDown' || ev.key === 'Enter') { ev.preventDefault(); this.searchInput.blur(); this.move(1); }
    });
    this.statusSeg = segmented({
      name: 'wstatus', label: 'Show', value: this.statusFilter(),
      options: [{ value: 'all', label: 'All' }, { value: 'running', label: 'Running' }, { value: 'stopped', label: 'Stopped' }, { value: 'errored', label: 'Errored' }],
      onchange: (v) => app.go(this.href({ status: v === 'all' ? null : v })),
    });
    this.viewSeg = segmented({
      name: 'wview', label: 'View', value: this.mode(),
      options: [{ value: 'table', icon: 'table', title: 'Table view (v)' }, { value: 'card', icon: 'cards', title: 'Card view (v)' }],
      onchange: (v) => app.saveSettings({ ui: { view_mode: v } }).catch((err) => app.toasts.error(err)),
    });
    this.viewSeg.classList.add('view-toggle');
    app.shell.setHeader('Workers', '', [
      h('div', { class: 'search' }, icon('search'), this.searchInput, h('kbd', { class: 'search-kbd', text: '/' })),
      this.statusSeg, this.viewSeg,
    ]);
    const model = app.workers;
    this.offs.push(
      listen(model, 'reset', () => this.apply()),
      listen(model, 'change', (ev) => this.onChange(ev.detail)),
      listen(model, 'stats', () => { this.statsDirty = true; }),
      listen(NARROW, 'change', () => this.build()),
    );
    this.build();
    this.timer = setInterval(() => this.tick(), 1000);
  }

  destroy() {
    for (const off of this.offs) off();
    clearInterval(this.timer);
    if (this.list) this.list.destroy();
  }

  update(route) {
    this.route = route;
    this.statusSeg.setValue(this.statusFilter());
    if (route.query.q != null && route.query.q !== this.searchInput.value) {
      this.searchInput.value = route.query.q;
      this.search = route.query.q;
    }
    this.apply();
    return true;
  }

  href(change) {
    const q = { ...this.route.query, ...change };
    const qs = new URLSearchParams(Object.entries(q).filter(([, v]) => v != null && v !== '')).toString();
    return `/workers${qs ? `?${qs}` : ''}`;
  }

  statusFilter() {
    return STATUS_FILTERS[this.route.query.status] ? this.route.query.status : 'all';
  }

  mode() {
    if (NARROW.matches) return 'card';
    return this.app.settings.get('ui', 'view_mode', 'table') === 'card' ? 'card' : 'table';
  }

  columns() {
    const cols = this.app.settings.get('ui', 'columns', null);
    return Array.isArray(cols) ? cols : DEFAULT_COLUMNS;
  }

  build() {
    const mode = this.mode();
    const columns = this.columns().join(',');
    if (this.list && this.builtMode === mode && this.builtColumns === columns) {
      if (this.list.remeasure) this.list.remeasure();
      return;
    }
    if (this.list) this.list.destroy();
    this.builtMode = mode;
    this.builtColumns = columns;
    this.viewSeg.setValue(mode);
    this.viewSeg.hidden = NARROW.matches;
    const selected = this.list ? this.list.selected : null;
    if (mode === 'table') {
      this.list = new WorkerTable(this.app, {
        model: this.app.workers, scroller: this.app.shell.scroller,
        onSort: (key) => this.setSort(key), getSort: () => this.sort,
      });
      this.list.setColumns(this.columns());
      this.container = h('div', { class: 'table-card wt-card' }, this.list.el);
    } else {
      this.list = new WorkerCards(this.app, { model: this.app.workers });
      this.container = this.list.el;
    }
    this.list.selected = selected;
    this.empty = h('div', { class: 'workers-empty' });
    this.body.replaceChildren(this.container, this.empty);
    this.apply();
  }

  settingsChanged() {
    this.build();
  }

  setSort(key) {
    this.sort = this.sort.key === key ? { key, dir: -this.sort.dir } : { key, dir: key === 'name' || key === 'namespace' || key === 'origin' ? 1 : -1 };
    if (this.list.renderHead) this.list.renderHead();
    this.apply();
  }

  filtered() {
    const q = this.route.query;
    const status = STATUS_FILTERS[this.statusFilter()];
    const ns = q.ns || null;
    const needle = this.search.toLowerCase();
    const out = [];
    for (const w of this.app.workers.all()) {
      if (ns && (w.namespace || 'default') !== ns) continue;
      if (!status(w)) continue;
      if (needle) {
        const cfg = w.config || {};
        const hay = `${w.name} ${w.namespace} ${w.status} ${cfg.exec || ''} ${cfg.cmd || ''} ${originText(w)}`.toLowerCase();
        if (!hay.includes(needle)) continue;
      }
      out.push(w);
    }
    const { key, dir } = this.sort;
    if (key !== 'name') {
      const tableish = { model: this.app.workers, now: () => this.app.now() };
      const get = key === 'status' ? (w) => w.status : COLUMNS[key] && COLUMNS[key].sort ? (w) => COLUMNS[key].sort(w, tableish) : (w) => w.name;
      const keyed = out.map((w) => [get(w), w]);
      keyed.sort((a, b) => (a[0] < b[0] ? -dir : a[0] > b[0] ? dir : a[1].name.localeCompare(b[1].name)));
      return keyed.map((k) => k[1]);
    }
    return dir < 0 ? out.reverse() : out;
  }

  apply() {
    if (!this.list) return;
    const items = this.filtered();
    this.list.setItems(items);
    this.lastSort = Date.now();
    const model = this.app.workers;
    const c = model.counts();
    this.app.shell.setSubtitle(model.loaded ? `${c.total} workers · ${c.running} running${c.errored ? ` · ${c.errored} errored` : ''}` : 'Loading…');
    this.renderEmpty(items.length);
    if (!this.firstRow && items.length) {
      this.firstRow = true;
      performance.mark('apm-first-row');
    }
  }

  renderEmpty(n) {
    const model = this.app.workers;
    this.container.hidden = n === 0;
    if (n) {
      this.empty.replaceChildren();
      return;
    }
    if (!model.loaded) {
      this.empty.replaceChildren(h('div', { class: 'skeleton-list' }, [0, 1, 2, 3, 4].map(() => h('div', { class: 'skeleton-row' }))));
    } else if (!model.size) {
      this.empty.replaceChildren(emptyState('layers', 'No workers yet', 'A worker is a program apm keeps running: a web server, a queue consumer, a script on a schedule.',
        actionButton(this.app, 'worker.new', undefined, { variant: 'full', cls: 'btn-primary' })));
    } else {
      this.empty.replaceChildren(emptyState('filter', 'No worker matches', 'Change the search or the filters.',
        h('button', { type: 'button', class: 'btn', text: 'Show all workers', onclick: () => { this.searchInput.value = ''; this.search = ''; this.app.go('/workers'); this.apply(); } })));
    }
  }

  onChange({ names, removed }) {
    const shown = this.visibleNames();
    if (removed || names.some((n) => !shown.has(n)) || this.sort.key === 'status' || this.statusFilter() !== 'all') {
      this.apply();
      return;
    }
    this.list.refresh(names);
    const c = this.app.workers.counts();
    this.app.shell.setSubtitle(`${c.total} workers · ${c.running} running${c.errored ? ` · ${c.errored} errored` : ''}`);
  }

  visibleNames() {
    return new Set((this.list.items || []).map((i) => (i.w ? i.w.name : i.name)));
  }

  tick() {
    const every = Math.max(1, this.app.settings.get('general', 'refresh_interval', 2)) * 1000;
    if (Date.now() - (this.lastTick || 0) < every - 50) return;
    this.lastTick = Date.now();
    if (['cpu', 'memory', 'uptime'].includes(this.sort.key) && this.statsDirty) {
      this.apply();
    } else {
      this.list.refreshStats();
    }
    this.statsDirty = false;
  }

  move(delta) {
    if (this.list) this.list.move(delta);
  }

  currentWorker() {
    return this.list && this.list.selected ? this.app.workers.get(this.list.selected) : null;
  }

  focusSearch() {
    this.searchInput.focus();
    this.searchInput.select();
  }
}
