// Log Volume: lines per hour per worker (stacked bars), by time range, worker and stream.
import { h, listen, replace, setText } from '../dom.js';
import * as fmt from '../format.js';
import { BarChart } from '../components/charts.js';
import { emptyState, segmented } from '../components/bits.js';
import { colors } from '../theme.js';

const TOP = 7;

export class VolumeView {
  constructor(app) {
    this.app = app;
    this.hours = 24;
    this.worker = '';
    this.streamKind = 'all';
    this.offs = [];
    this.el = h('section', { class: 'view view-volume' });
  }

  mount() {
    const app = this.app;
    this.workerSel = h('select', { class: 'input input-sm', 'aria-label': 'Worker' });
    this.workerSel.addEventListener('change', () => { this.worker = this.workerSel.value; this.load(); });
    this.fillWorkers();
    const range = segmented({
      name: 'vrange', label: 'Time range', value: String(this.hours),
      options: [{ value: '6', label: '6 h' }, { value: '24', label: '24 h' }, { value: '72', label: '3 d' }, { value: '168', label: '7 d' }],
      onchange: (v) => { this.hours = Number(v); this.load(); },
    });
    const stream = segmented({
      name: 'vstream', label: 'Stream', value: 'all',
      options: [{ value: 'all', label: 'All' }, { value: 'out', label: 'stdout' }, { value: 'err', label: 'stderr' }],
      onchange: (v) => { this.streamKind = v; this.render(); },
    });
    app.shell.setHeader('Log Volume', 'Lines written per hour', [this.workerSel]);
    this.chart = new BarChart({ label: 'Log lines per hour', format: (v) => fmt.count(Math.round(v)), bucketLabel: (t, long) => (long ? fmt.datetime(t).slice(0, 16) : fmt.hourLabel(t)) });
    this.legend = h('ul', { class: 'legend', 'aria-label': 'Workers in the chart' });
    this.totals = h('div', { class: 'vol-totals' });
    this.summary = h('div', { class: 'vol-summary' });
    this.chartBox = h('div', { class: 'card chart-card chart-card-tall' }, this.chart.el, this.legend);
    this.el.replaceChildren(
      h('div', { class: 'log-toolbar card' }, range, stream, h('span', { class: 'grow' }), this.summary),
      this.chartBox,
      h('h2', { class: 'section-title', text: 'Per worker' }), this.totals);
    this.offs.push(listen(app.workers, 'reset', () => this.fillWorkers()));
    this.load();
    this.timer = setInterval(() => this.load(), 60000);
  }

  destroy() {
    for (const off of this.offs) off();
    clearInterval(this.timer);
    this.chart.destroy();
  }

  fillWorkers() {
    const names = this.app.workers.all().map((w) => w.name);
    replace(this.workerSel, h('option', { value: '', text: 'All workers' }), names.map((n) => h('option', { value: n, text: n })));
    this.workerSel.value = this.worker;
  }

  async load() {
    try {
      this.data = await this.app.api.volume({ hours: this.hours, worker: this.worker || null });
    } catch (err) {
      this.app.toasts.error(err, 'Log Volume');
      return;
    }
    this.render();
  }

  value(row) {
    if (this.streamKind === 'out') return row.out || 0;
    if (this.streamKind === 'err') return row.err || 0;
    return (row.out || 0) + (row.err || 0) + (row.apm || 0);
  }

  render() {
    const d = this.data;
    if (!d) return;
    const start = Math.floor(d.since / 3600) * 3600;
    const end = Math.floor(d.until / 3600) * 3600;
    const buckets = [];
    for (let t = start; t <= end; t += 3600) buckets.push(t);
    const index = new Map(buckets.map((t, i) => [t, i]));
    const perWorker = new Map();
    for (const row of d.rows || []) {
      const i = index.get(Math.floor(row.hour / 3600) * 3600);
      if (i == null) continue;
      if (!perWorker.has(row.worker)) perWorker.set(row.worker, new Array(buckets.length).fill(0));
      perWorker.get(row.worker)[i] += this.value(row);
    }
    const totals = [...perWorker.entries()].map(([name, values]) => ({ name, values, total: values.reduce((a, b) => a + b, 0) }))
      .filter((s) => s.total > 0).sort((a, b) => b.total - a.total);
    const palette = colors().palette;
    const top = totals.slice(0, TOP).map((s, i) => ({ ...s, color: palette[i % palette.length] }));
    const rest = totals.slice(TOP);
    if (rest.length) {
      const values = new Array(buckets.length).fill(0);
      for (const s of rest) s.values.forEach((v, i) => { values[i] += v; });
      top.push({ name: `${rest.length} others`, values, total: values.reduce((a, b) => a + b, 0), color: colors().faint });
    }
    this.chart.setData(buckets, top);
    const sum = totals.reduce((a, s) => a + s.total, 0);
    const peak = buckets.map((_, i) => totals.reduce((a, s) => a + s.values[i], 0)).reduce((a, b) => Math.max(a, b), 0);
    setText(this.summary, `${fmt.integer(sum)} lines · peak ${fmt.integer(peak)} / hour`);
    replace(this.legend, top.map((s) => h('li', null, h('span', { class: 'swatch', style: { background: s.color } }), h('span', { text: s.name }), h('span', { class: 'muted', text: fmt.count(s.total) }))));
    if (!totals.length) {
      replace(this.totals, emptyState('volume', 'No log lines in this range', 'Workers that write output show up here.'));
      return;
    }
    const max = totals[0].total;
    replace(this.totals, h('div', { class: 'card table-card' }, h('table', { class: 'itable' },
      h('thead', null, h('tr', null, ['Worker', 'Lines', 'Share', ''].map((t, i) => h('th', { scope: 'col', class: [1, 2].includes(i) ? 'c-num' : null, text: t })))),
      h('tbody', null, totals.map((s) => {
        const bar = h('span', { class: 'vbar-fill' });
        bar.style.width = `${Math.max(1, (s.total / max) * 100)}%`;
        return h('tr', null,
          h('td', null, h('a', { class: 'wname', href: `#/library/${encodeURIComponent(s.name)}`, text: s.name })),
          h('td', { class: 'c-num', text: fmt.integer(s.total) }),
          h('td', { class: 'c-num', text: fmt.percent((s.total / sum) * 100) }),
          h('td', { class: 'vbar-cell' }, h('span', { class: 'vbar' }, bar)));
      })))));
  }
}
