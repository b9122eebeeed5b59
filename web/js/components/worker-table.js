// The Workers table: windowed rendering (only the rows in view exist in the DOM, between
// two spacer rows), rows cached per worker and updated cell by cell, instance rows under
// an expanded worker, sortable headers, keyboard selection and a context menu per row.
import { h, setText, toggle, rafThrottle } from '../dom.js';
import { icon } from '../icons.js';
import * as fmt from '../format.js';
import { pids, restartsTotal, tone } from '../store.js';
import { actionButton, setStatus, statusPill } from './bits.js';
import { drawSparkline } from './charts.js';
import { showsStart } from '../actions.js';

const OVERSCAN = 10;
const SPARK_W = 80;
const SPARK_H = 24;

/** Every optional column (Settings → UI → Columns picks and orders them). */
export const COLUMNS = {
  pid: { label: 'PID', cls: 'c-num', sort: (w) => pids(w)[0] || 0 },
  namespace: { label: 'Namespace', cls: 'c-ns', sort: (w) => w.namespace || '' },
  instances: { label: 'Inst.', title: 'Instances running / wanted', cls: 'c-num', sort: (w) => w.instances_running },
  uptime: { label: 'Uptime', cls: 'c-num', sort: (w, t) => t.model.uptime(w, t.now()) || -1 },
  cpu: { label: 'CPU', cls: 'c-num', sort: (w, t) => t.model.cpu(w) || 0 },
  cpu_graph: { label: 'CPU (60 s)', cls: 'c-spark' },
  memory: { label: 'RAM', cls: 'c-num', sort: (w, t) => t.model.memory(w) || 0 },
  restarts: { label: 'Restarts', title: 'Restarts (clean + error)', cls: 'c-num', sort: (w) => restartsTotal(w) },
  errors: { label: 'Errors', title: 'Restarts after an error exit', cls: 'c-num', sort: (w) => (w.restarts && w.restarts.error) || 0 },
  origin: { label: 'Origin', cls: 'c-origin', sort: (w) => originText(w) },
};

export const COLUMN_LABELS = Object.fromEntries(Object.entries(COLUMNS).map(([k, v]) => [k, v.label]));

export function originText(w) {
  const o = w.origin || {};
  if (o.file) return o.file.split('/').pop();
  return o.kind || '–';
}

function pidText(list) {
  if (!list.length) return '–';
  return list.length === 1 ? String(list[0]) : `${list[0]} +${list.length - 1}`;
}

export class WorkerTable {
  /**
   * ctx: the app; model: WorkersModel; scroller: the scrolling element;
   * onSort(key): header clicked; getSort(): {key, dir}
   */
  constructor(ctx, { model, scroller, onSort, getSort }) {
    this.ctx = ctx;
    this.model = model;
    this.scroller = scroller;
    this.onSort = onSort;
    this.getSort = getSort;
    this.columns = [];
    this.items = [];
    this.rows = new Map();
    this.expanded = new Set();
    this.selected = null;
    this.range = [0, 0];
    this.rowH = 0;
    this.thead = h('thead');
    this.tbody = h('tbody');
    this.top = h('tr', { class: 'spacer', 'aria-hidden': 'true' });
    this.bottom = h('tr', { class: 'spacer', 'aria-hidden': 'true' });
    this.el = h('table', { class: 'wt', 'aria-label': 'Workers', 'aria-rowcount': '0' }, this.thead, this.tbody);
    this.schedule = rafThrottle(() => this.render());
    this.onScroll = () => this.schedule();
    scroller.addEventListener('scroll', this.onScroll, { passive: true });
    this.ro = new ResizeObserver(() => this.schedule());
    this.ro.observe(scroller);
    this.el.addEventListener('contextmenu', (ev) => this.onContext(ev));
  }

  destroy() {
    this.scroller.removeEventListener('scroll', this.onScroll);
    this.ro.disconnect();
  }

  now() {
    return this.ctx.now();
  }

  setColumns(ids) {
    this.columns = ids.filter((id) => COLUMNS[id]);
    this.rows.clear();
    this.renderHead();
    this.range = [-1, -1];
    this.schedule();
  }

  renderHead() {
    const sort = this.getSort();
    const th = (key, label, cls, sortable, title) => {
      const attrs = { class: cls, scope: 'col', dataset: { col: key } };
      if (!sortable) return h('th', attrs, label);
      const dir = sort.key === key ? sort.dir : 0;
      attrs['aria-sort'] = dir ? (dir > 0 ? 'ascending' : 'descending') : 'none';
      return h('th', attrs, h('button', { type: 'button', class: `th-sort ${dir ? 'active' : ''}`, title: title || null, onclick: () => this.onSort(key) },
        label, icon(dir < 0 ? 'chevron-down' : dir > 0 ? 'chevron-down' : 'sort', dir > 0 ? 'flip' : '')));
    };
    const cells = [th('name', 'Name', 'c-name', true), th('status', 'Status', 'c-status', true)];
    for (const id of this.columns) {
      const col = COLUMNS[id];
      cells.push(th(id, col.label, col.cls, !!col.sort, col.title));
    }
    cells.push(h('th', { class: 'c-actions', scope: 'col' }, h('span', { class: 'sr-only', text: 'Actions' })));
    this.thead.replaceChildren(h('tr', null, cells));
    this.colspan = cells.length;
    this.top.replaceChildren(h('td', { colspan: this.colspan }));
    this.bottom.replaceChildren(h('td', { colspan: this.colspan }));
  }

  /** The filtered + sorted workers; instance rows follow expanded workers. */
  setItems(workers) {
    const items = [];
    for (const w of workers) {
      items.push({ key: w.name, w, inst: null });
      if (this.expanded.has(w.name) && (w.instances || []).length > 1) {
        for (const inst of w.instances) items.push({ key: `${w.name}#${inst.index}`, w, inst });
      }
    }
    this.items = items;
    this.el.setAttribute('aria-rowcount', String(items.length + 1));
    this.range = [-1, -1];
    this.render();
  }

  bodyOffset() {
    const sr = this.scroller.getBoundingClientRect();
    const tr = this.tbody.getBoundingClientRect();
    return tr.top - sr.top + this.scroller.scrollTop;
  }

  render(force = false) {
    const n = this.items.length;
    if (!this.rowH && n) this.rowH = this.measure();
    const rh = this.rowH || 44;
    const viewTop = this.scroller.scrollTop - this.bodyOffset();
    const viewH = this.scroller.clientHeight || 800;
    const start = Math.max(0, Math.floor(viewTop / rh) - OVERSCAN);
    const end = Math.min(n, Math.ceil((viewTop + viewH) / rh) + OVERSCAN);
    if (!force && start === this.range[0] && end === this.range[1]) return;
    this.range = [start, end];
    this.top.style.height = `${start * rh}px`;
    this.bottom.style.height = `${(n - end) * rh}px`;
    const nodes = [this.top];
    const now = this.now();
    for (let i = start; i < end; i += 1) {
      const item = this.items[i];
      const row = this.row(item);
      row.tr.setAttribute('aria-rowindex', String(i + 2));
      row.update(item, now, false);
      nodes.push(row.tr);
    }
    nodes.push(this.bottom);
    this.tbody.replaceChildren(...nodes);
    if (this.rows.size > 3000) this.pruneCache();
  }

  /** The real height of a row (compact mode and the font size change it).  Measured on a
   *  row in place, never by emptying the body (that would clamp the scroll position). */
  measure() {
    const shown = this.tbody.querySelector('tr.wrow');
    if (shown) return shown.getBoundingClientRect().height || 0;
    const probe = this.row(this.items[0]);
    probe.update(this.items[0], this.now(), false);
    this.tbody.insertBefore(probe.tr, this.bottom.parentNode === this.tbody ? this.bottom : null);
    const hgt = probe.tr.getBoundingClientRect().height;
    probe.tr.remove();
    return hgt > 10 ? hgt : 0;
  }

  /** Row heights change with compact mode and font size: measure again. */
  remeasure() {
    this.rowH = 0;
    this.range = [-1, -1];
    this.schedule();
  }

  pruneCache() {
    const keep = new Set(this.items.slice(this.range[0], this.range[1]).map((i) => i.key));
    for (const key of this.rows.keys()) if (!keep.has(key)) this.rows.delete(key);
  }

  row(item) {
    let row = this.rows.get(item.key);
    if (!row) {
      row = item.inst ? new InstanceRow(this, item) : new WorkerRow(this, item);
      this.rows.set(item.key, row);
    }
    return row;
  }

  /** Worker data changed: refresh the visible rows of these names. */
  refresh(names) {
    const set = new Set(names);
    const now = this.now();
    for (let i = this.range[0]; i < this.range[1]; i += 1) {
      const item = this.items[i];
      if (item && set.has(item.w.name)) {
        item.w = this.model.get(item.w.name) || item.w;
        if (item.inst) item.inst = (item.w.instances || []).find((x) => x.index === item.inst.index) || item.inst;
        this.row(item).update(item, now, true);
      }
    }
  }

  /** Live numbers (CPU, RAM, uptime, sparklines) of the visible rows. */
  refreshStats() {
    const now = this.now();
    for (let i = this.range[0]; i < this.range[1]; i += 1) {
      const item = this.items[i];
      if (item) this.row(item).live(item, now);
    }
  }

  toggleExpand(name) {
    if (this.expanded.has(name)) this.expanded.delete(name);
    else this.expanded.add(name);
    this.ctx.view.apply();
  }

  select(name, scroll = false) {
    if (this.selected === name) return;
    const old = this.rows.get(this.selected);
    if (old) old.setSelected(false);
    this.selected = name;
    const row = this.rows.get(name);
    if (row) row.setSelected(true);
    if (scroll) this.scrollTo(name);
    this.ctx.selectionChanged();
  }

  scrollTo(name) {
    const idx = this.items.findIndex((i) => i.key === name);
    if (idx < 0) return;
    const rh = this.rowH || 44;
    const top = this.bodyOffset() + idx * rh;
    const head = this.thead.getBoundingClientRect().height;
    const st = this.scroller.scrollTop;
    const vh = this.scroller.clientHeight;
    if (top - head < st) this.scroller.scrollTop = top - head;
    else if (top + rh > st + vh) this.scroller.scrollTop = top + rh - vh;
  }

  move(delta) {
    const names = this.items.filter((i) => !i.inst).map((i) => i.key);
    if (!names.length) return;
    let idx = names.indexOf(this.selected);
    idx = idx < 0 ? (delta > 0 ? 0 : names.length - 1) : Math.max(0, Math.min(names.length - 1, idx + delta));
    this.select(names[idx], true);
    this.schedule();
  }

  onContext(ev) {
    const tr = ev.target.closest('tr[data-name]');
    if (!tr) return;
    ev.preventDefault();
    this.select(tr.dataset.name);
    this.ctx.workerMenu(this.model.get(tr.dataset.name), { x: ev.clientX, y: ev.clientY });
  }
}

class WorkerRow {
  constructor(table, item) {
    this.table = table;
    this.name = item.w.name;
    this.data = null;
    this.cells = {};
    const ctx = table.ctx;
    const getW = () => table.model.get(this.name);
    this.expander = h('button', {
      type: 'button', class: 'icon-btn expander', 'aria-label': `Show the instances of ${this.name}`, 'aria-expanded': 'false',
      onclick: (ev) => { ev.stopPropagation(); table.toggleExpand(this.name); },
    }, icon('chevron-right'));
    this.link = h('a', { class: 'wname', href: `#/workers/${encodeURIComponent(this.name)}`, text: this.name });
    this.pill = statusPill(item.w.status);
    const tds = [
      h('td', { class: 'c-name' }, h('div', { class: 'name-cell' }, this.expander, h('span', { class: 'sdot' }), this.link)),
      h('td', { class: 'c-status' }, this.pill),
    ];
    for (const id of table.columns) {
      const td = h('td', { class: COLUMNS[id].cls, dataset: { col: id } });
      if (id === 'cpu_graph') {
        this.spark = h('canvas', { class: 'spark', width: SPARK_W, height: SPARK_H, 'aria-hidden': 'true' });
        td.append(this.spark);
      } else if (id === 'namespace') {
        this.nsChip = h('span', { class: 'chip' });
        td.append(this.nsChip);
      }
      this.cells[id] = td;
      tds.push(td);
    }
    this.startBtn = actionButton(ctx, 'worker.start', getW);
    this.stopBtn = actionButton(ctx, 'worker.stop', getW);
    this.buttons = [
      this.startBtn, this.stopBtn,
      actionButton(ctx, 'worker.restart', getW),
      actionButton(ctx, 'worker.logs', getW),
    ];
    const more = h('button', {
      type: 'button', class: 'icon-btn', 'aria-label': `More actions for ${this.name}`, title: 'More actions', 'aria-haspopup': 'menu',
      onclick: (ev) => { ev.stopPropagation(); ctx.workerMenu(getW(), more); },
    }, icon('more'));
    tds.push(h('td', { class: 'c-actions' }, h('div', { class: 'row-actions' }, this.buttons, more)));
    this.tr = h('tr', { class: 'wrow', dataset: { name: this.name }, 'aria-selected': 'false' }, tds);
    this.tr.addEventListener('click', () => table.select(this.name));
    this.tr.addEventListener('dblclick', (ev) => { if (!ev.target.closest('button, a')) ctx.go(`/workers/${encodeURIComponent(this.name)}`); });
    this.setSelected(table.selected === this.name);
  }

  setSelected(on) {
    toggle(this.tr, 'selected', on);
    this.tr.setAttribute('aria-selected', on ? 'true' : 'false');
  }

  update(item, now, force) {
    const w = item.w;
    if (force || this.data !== w) {
      this.data = w;
      setStatus(this.pill, w.status);
      this.tr.dataset.tone = tone(w.status);
      toggle(this.tr, 'disabled', !w.enabled);
      const multi = (w.instances || []).length > 1;
      this.expander.hidden = !multi;
      const open = this.table.expanded.has(w.name);
      this.expander.setAttribute('aria-expanded', open ? 'true' : 'false');
      toggle(this.expander, 'open', open);
      const c = this.cells;
      if (c.pid) setText(c.pid, pidText(pids(w)));
      if (this.nsChip) setText(this.nsChip, w.namespace || 'default');
      if (c.instances) setText(c.instances, `${w.instances_running}/${w.instances_wanted}`);
      if (c.restarts) setText(c.restarts, restartsTotal(w));
      if (c.errors) {
        const n = (w.restarts && w.restarts.error) || 0;
        setText(c.errors, n);
        toggle(c.errors, 'bad', n > 0);
      }
      if (c.origin) setText(c.origin, originText(w));
      const startable = showsStart(w);
      this.startBtn.hidden = !startable;
      this.stopBtn.hidden = startable;
      for (const b of this.buttons) b.sync();
    }
    this.setSelected(this.table.selected === w.name);
    this.live(item, now);
  }

  live(item, now) {
    const w = item.w;
    const m = this.table.model;
    const c = this.cells;
    if (c.cpu) setText(c.cpu, fmt.percent(m.cpu(w)));
    if (c.memory) setText(c.memory, fmt.bytes(m.memory(w)));
    if (c.uptime) setText(c.uptime, fmt.duration(m.uptime(w, now)));
    if (this.spark) drawSparkline(this.spark, m.spark.get(w.name), SPARK_W, SPARK_H);
  }
}

class InstanceRow {
  constructor(table, item) {
    this.table = table;
    this.cells = {};
    this.pill = statusPill(item.inst.status);
    const label = `${item.w.name}#${item.inst.index}`;
    const tds = [
      h('td', { class: 'c-name' }, h('div', { class: 'name-cell inst' }, h('span', { class: 'tree', 'aria-hidden': 'true' }), h('span', { class: 'iname', text: label }))),
      h('td', { class: 'c-status' }, this.pill),
    ];
    for (const id of table.columns) {
      const td = h('td', { class: COLUMNS[id].cls, dataset: { col: id } });
      this.cells[id] = td;
      tds.push(td);
    }
    tds.push(h('td', { class: 'c-actions' }));
    this.tr = h('tr', { class: 'irow' }, tds);
  }

  setSelected() {}

  update(item, now) {
    const i = item.inst;
    setStatus(this.pill, i.status);
    const c = this.cells;
    if (c.pid) setText(c.pid, i.pid == null ? '–' : i.pid);
    if (c.restarts) setText(c.restarts, (i.restarts.clean || 0) + (i.restarts.error || 0));
    if (c.errors) setText(c.errors, i.restarts.error || 0);
    if (c.instances) setText(c.instances, `#${i.index}`);
    if (c.origin && i.last_exit) setText(c.origin, i.last_exit.signal ? `killed ${i.last_exit.signal}` : `exit ${i.last_exit.code}`);
    this.live(item, now);
  }

  live(item, now) {
    const i = item.inst;
    const st = this.table.model.instanceStats(item.w, i.index);
    const c = this.cells;
    if (c.cpu) setText(c.cpu, fmt.percent(st.cpu));
    if (c.memory) setText(c.memory, fmt.bytes(st.memory));
    if (c.uptime) setText(c.uptime, fmt.duration(i.started_at == null ? null : now - i.started_at));
  }
}
