// Log Library: every worker's log files in one place.  Pick a worker for its latest
// lines, or search every file (current and rotated) with a regular expression; level
// colouring and filters, timestamps, downloads.
import { h, debounce, listen, replace, setText } from '../dom.js';
import { icon } from '../icons.js';
import * as fmt from '../format.js';
import { LogView } from '../components/logview.js';
import { emptyState, segmented, spinner } from '../components/bits.js';

const FILE_LINE = /^(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?)\s+(\S+?)(?:#(\d+))?\s+([|!*])\s?(.*)$/s;
const MARKER_STREAM = { '|': 'out', '!': 'err', '*': 'apm' };

/** A line as written to the log file ("<time> web#1 | text") -> a log line object. */
export function parseFileLine(line, worker) {
  const m = FILE_LINE.exec(line);
  if (!m) return { ts: null, worker, index: null, stream: 'out', text: line };
  const ts = Date.parse(m[1].replace(' ', 'T')) / 1000;
  return { ts: Number.isFinite(ts) ? ts : null, worker: m[2] || worker, index: m[3] ? Number(m[3]) : null, stream: MARKER_STREAM[m[4]] || 'out', text: m[5] };
}

export class LibraryView {
  constructor(app, route) {
    this.app = app;
    this.worker = route.arg || '';
    this.rows = [];
    this.offs = [];
    this.el = h('section', { class: 'view view-library' });
  }

  mount() {
    const app = this.app;
    app.shell.setHeader('Log Library', 'Every worker\'s log files', []);
    this.filter = h('input', { class: 'input input-sm', type: 'search', placeholder: 'Filter workers', 'aria-label': 'Filter workers', autocomplete: 'off' });
    this.filter.addEventListener('input', debounce(() => this.renderList(), 80));
    this.list = h('ul', { class: 'lib-list', 'aria-label': 'Workers' });
    this.query = h('input', { class: 'input', type: 'search', placeholder: 'Search all logs (regex)', 'aria-label': 'Search the logs', spellcheck: 'false', autocomplete: 'off' });
    this.caseBtn = h('button', { type: 'button', class: 'toggle-chip', 'aria-pressed': 'false', title: 'Match case', 'aria-label': 'Match case', text: 'Aa' });
    this.caseBtn.addEventListener('click', () => {
      const on = this.caseBtn.getAttribute('aria-pressed') !== 'true';
      this.caseBtn.setAttribute('aria-pressed', on ? 'true' : 'false');
      this.caseBtn.classList.toggle('active', on);
    });
    const searchForm = h('form', { class: 'lib-search', role: 'search' },
      h('div', { class: 'search' }, icon('search'), this.query, this.caseBtn),
      h('button', { type: 'submit', class: 'btn btn-primary btn-sm' }, 'Search'));
    searchForm.addEventListener('submit', (ev) => { ev.preventDefault(); this.load(); });
    this.lines = h('select', { class: 'input input-sm', 'aria-label': 'Lines to show' },
      [200, 1000, 5000].map((n) => h('option', { value: String(n), text: `Last ${n} lines` })));
    this.lines.value = String(Math.min(5000, app.settings.get('general', 'tail_lines', 200) > 1000 ? 5000 : app.settings.get('general', 'tail_lines', 200) > 200 ? 1000 : 200));
    this.lines.addEventListener('change', () => this.load());
    this.level = segmented({
      name: 'llevel', label: 'Level', value: 'all',
      options: [{ value: 'all', label: 'All levels' }, { value: 'warn', label: 'Warnings' }, { value: 'error', label: 'Errors' }],
      onchange: (v) => this.view && this.view.setLevel(v === 'all' ? null : v),
    });
    this.actions = h('div', { class: 'btn-row' });
    this.status = h('div', { class: 'log-status muted', role: 'status' });
    this.content = h('div', { class: 'lib-content' });
    this.el.replaceChildren(h('div', { class: 'lib-layout' },
      h('aside', { class: 'lib-side card' }, this.filter, this.list),
      h('div', { class: 'lib-main' },
        h('div', { class: 'log-toolbar card' }, searchForm, this.lines, this.level, h('span', { class: 'grow' }), this.actions),
        this.status, this.content)));
    this.offs.push(listen(app.workers, 'change', (ev) => { if (ev.detail.removed) this.loadIndex(); }));
    this.loadIndex();
    this.load();
  }

  destroy() {
    for (const off of this.offs) off();
  }

  update(route) {
    this.worker = route.arg || '';
    this.renderList();
    this.load();
    return true;
  }

  async loadIndex() {
    try {
      const data = await this.app.api.library();
      this.rows = data.workers || [];
    } catch (err) {
      this.app.toasts.error(err, 'Log Library');
      return;
    }
    this.renderList();
    if (!this.worker && !this.query.value.trim()) this.renderOverview();
  }

  renderList() {
    const needle = this.filter.value.trim().toLowerCase();
    const item = (name, label, meta, active) => h('li', null, h('a', { class: `lib-item ${active ? 'active' : ''}`, href: name ? `#/library/${encodeURIComponent(name)}` : '#/library', 'aria-current': active ? 'true' : null },
      h('span', { class: 'lib-name', text: label }), h('span', { class: 'lib-meta', text: meta })));
    const total = this.rows.reduce((s, r) => s + (r.size || 0), 0);
    const items = [item('', 'All workers', fmt.bytes(total), !this.worker)];
    for (const r of this.rows) {
      if (needle && !r.worker.toLowerCase().includes(needle)) continue;
      items.push(item(r.worker, r.worker, fmt.bytes(r.size), r.worker === this.worker));
    }
    replace(this.list, items);
  }

  async load() {
    const q = this.query.value.trim();
    const seq = (this.seq = (this.seq || 0) + 1);
    replace(this.actions);
    if (!q && !this.worker) {
      this.view = null;
      this.renderOverview();
      return;
    }
    replace(this.content, h('div', { class: 'loading' }, spinner(), q ? ' Searching…' : ' Loading…'));
    const view = new LogView({ showWorker: !this.worker || !!q, max: 5000, label: 'Log lines', empty: q ? 'No line matches.' : 'This worker has not written anything yet.' });
    try {
      if (q) {
        const res = await this.app.api.searchLogs({
          q, worker: this.worker || null, limit: 2000,
          ignore_case: this.caseBtn.getAttribute('aria-pressed') === 'true' ? null : 1,
        });
        if (seq !== this.seq) return;
        view.setLines(res.matches.map((m) => parseFileLine(m.line, m.worker)));
        view.setFilter(q, { regex: true, caseSensitive: this.caseBtn.getAttribute('aria-pressed') === 'true' });
        setText(this.status, `${fmt.plural(res.matches.length, 'match', 'matches')} in ${fmt.plural(res.summary.files || 0, 'file')}${res.truncated ? ' (first 2000 shown)' : ''} · ${res.summary.elapsed_ms} ms`);
      } else {
        const res = await this.app.api.tail(this.worker, Number(this.lines.value), { color: 1 });
        if (seq !== this.seq) return;
        view.setLines(res.lines, this.worker);
        const row = this.rows.find((r) => r.worker === this.worker);
        setText(this.status, `${fmt.plural(res.lines.length, 'line')}${row ? ` · ${row.files.length} file${row.files.length === 1 ? '' : 's'}, ${fmt.bytes(row.size)}` : ''}`);
      }
    } catch (err) {
      if (seq !== this.seq) return;
      replace(this.content, h('div', { class: 'form-error', role: 'alert', text: `${err.message}${err.hint ? ` — ${err.hint}` : ''}` }));
      setText(this.status, '');
      return;
    }
    this.view = view;
    const lvl = this.level.querySelector('input:checked');
    if (lvl && lvl.value !== 'all') view.setLevel(lvl.value);
    replace(this.content, h('div', { class: 'card log-card log-card-full' }, view.wrap));
    const actions = [];
    if (this.worker) {
      actions.push(h('a', { class: 'btn btn-sm', href: `#/logs/${encodeURIComponent(this.worker)}` }, icon('activity'), 'Live'));
      actions.push(h('a', { class: 'btn btn-sm', href: this.app.api.downloadUrl(this.worker), download: `${this.worker}.log` }, icon('download'), 'Download files'));
    }
    actions.push(h('button', { type: 'button', class: 'btn btn-sm btn-ghost', onclick: () => this.exportView() }, 'Export shown'));
    replace(this.actions, actions);
  }

  renderOverview() {
    if (this.worker || this.query.value.trim()) return;
    setText(this.status, '');
    if (!this.rows.length) {
      replace(this.content, emptyState('library', 'No logs yet', 'Workers write their output here once they run.'));
      return;
    }
    const sorted = [...this.rows].sort((a, b) => (b.size || 0) - (a.size || 0));
    replace(this.content, h('div', { class: 'card table-card' }, h('table', { class: 'itable lib-table' },
      h('thead', null, h('tr', null, ['Worker', 'Namespace', 'Files', 'Size', 'Lines (since start)', 'Last write', ''].map((t, i) => h('th', { scope: 'col', class: [2, 3, 4].includes(i) ? 'c-num' : null, text: t })))),
      h('tbody', null, sorted.map((r) => {
        const last = Math.max(0, ...r.files.map((f) => f.mtime || 0));
        return h('tr', null,
          h('td', null, h('a', { class: 'wname', href: `#/library/${encodeURIComponent(r.worker)}`, text: r.worker })),
          h('td', null, h('span', { class: 'chip', text: r.namespace })),
          h('td', { class: 'c-num', text: r.files.length }),
          h('td', { class: 'c-num', text: fmt.bytes(r.size) }),
          h('td', { class: 'c-num', text: r.lines == null ? '–' : fmt.integer(r.lines) }),
          h('td', { text: last ? fmt.ago(last, this.app.now()) : '–' }),
          h('td', { class: 'c-actions' }, h('a', { class: 'icon-btn', href: this.app.api.downloadUrl(r.worker), download: `${r.worker}.log`, 'aria-label': `Download the logs of ${r.worker}`, title: 'Download' }, icon('download'))));
      })))));
  }

  exportView() {
    if (!this.view) return;
    const blob = new Blob([this.view.text()], { type: 'text/plain' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `${this.worker || 'apm'}-library.log` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  }

  focusSearch() {
    this.query.focus();
  }
}
