// Live Logs: one worker's last lines (tail_lines, default 200) then live, or every
// worker live.  Pause, clear, download, search (plain or regex), stream filter, follow.
import { h, debounce, listen, setText } from '../dom.js';
import { icon } from '../icons.js';
import { LogView } from '../components/logview.js';
import { segmented } from '../components/bits.js';
import { plural } from '../format.js';

export class LogsView {
  constructor(app, route) {
    this.app = app;
    this.worker = route.arg || '';
    this.offs = [];
    this.el = h('section', { class: 'view view-logs' });
  }

  mount() {
    const app = this.app;
    this.select = h('select', { class: 'input select-worker', 'aria-label': 'Worker' });
    this.select.addEventListener('change', () => app.go(this.select.value ? `/logs/${encodeURIComponent(this.select.value)}` : '/logs'));
    this.fillSelect();
    app.shell.setHeader('Live Logs', '', [this.select]);

    this.view = new LogView({ showWorker: !this.worker, max: 5000, label: 'Live log output', empty: this.emptyText() });
    this.search = h('input', { class: 'input', type: 'search', placeholder: 'Search the lines', 'aria-label': 'Search the lines', spellcheck: 'false', autocomplete: 'off' });
    this.regex = toggleButton('.*', 'Regular expression', () => this.applyFilter());
    this.caseBtn = toggleButton('Aa', 'Match case', () => this.applyFilter());
    this.searchErr = h('span', { class: 'search-error', role: 'status' });
    const onSearch = debounce(() => this.applyFilter(), 150);
    this.search.addEventListener('input', onSearch);
    this.streamSeg = segmented({
      name: 'lstream', label: 'Stream', value: 'all',
      options: [{ value: 'all', label: 'All' }, { value: 'out', label: 'stdout' }, { value: 'err', label: 'stderr' }],
      onchange: (v) => this.view.setStream(v === 'all' ? null : v),
    });
    this.pauseBtn = h('button', { type: 'button', class: 'btn btn-sm', 'aria-pressed': 'false', onclick: () => this.togglePause() });
    this.followBtn = h('button', { type: 'button', class: 'btn btn-sm', 'aria-pressed': 'true', onclick: () => this.view.setFollow(!this.view.follow) }, icon('follow'), 'Auto-scroll');
    const clearBtn = h('button', { type: 'button', class: 'btn btn-sm', title: 'Clear the view (the log files stay)', onclick: () => this.view.clear() }, icon('eraser'), 'Clear');
    this.download = h('a', { class: 'btn btn-sm', download: '' }, icon('download'), 'Download');
    const saveView = h('button', { type: 'button', class: 'btn btn-sm btn-ghost', title: 'Save the lines shown here as a text file', onclick: () => this.saveView() }, 'Save view');
    this.count = h('span', { class: 'log-count muted', role: 'status' });
    this.el.replaceChildren(
      h('div', { class: 'log-toolbar card' },
        h('div', { class: 'search search-log' }, icon('search'), this.search, this.regex, this.caseBtn),
        this.streamSeg, h('span', { class: 'grow' }), this.pauseBtn, this.followBtn, clearBtn, this.download, saveView),
      h('div', { class: 'log-status' }, this.count, this.searchErr),
      h('div', { class: 'card log-card log-card-full' }, this.view.wrap));
    this.offs.push(
      listen(this.view, 'change', () => this.renderState()),
      listen(app.workers, 'reset', () => this.fillSelect()),
      listen(app.workers, 'change', (ev) => { if (ev.detail.removed || ev.detail.names.some((n) => !this.known.has(n))) this.fillSelect(); }),
    );
    this.renderState();
    this.updateDownload();
  }

  destroy() {
    for (const off of this.offs) off();
  }

  update(route) {
    if ((route.arg || '') === this.worker) return true;
    return false; // another worker: a fresh view (and stream subscription)
  }

  stream() {
    return this.worker ? { logs: [this.worker], tail: this.app.settings.get('general', 'tail_lines', 200) } : { logs: ['*'] };
  }

  emptyText() {
    return this.worker ? `Waiting for ${this.worker} to write something…` : 'Waiting for output from any worker… (pick one above for its latest lines)';
  }

  fillSelect() {
    const names = this.app.workers.all().map((w) => w.name);
    this.known = new Set(names);
    const opts = [h('option', { value: '', text: 'All workers (live)' }), ...names.map((n) => h('option', { value: n, text: n }))];
    if (this.worker && !this.known.has(this.worker)) opts.push(h('option', { value: this.worker, text: `${this.worker} (not found)` }));
    this.select.replaceChildren(...opts);
    this.select.value = this.worker;
  }

  onLog(d) {
    if (this.worker && d.worker !== this.worker) return;
    if (d.backlog) this.view.setLines(d.lines, d.worker);
    else this.view.append(d.lines, d.worker);
    if (d.dropped) this.app.toasts.show(`${plural(d.dropped, 'line')} of ${d.worker} skipped: the output came too fast`, { tone: 'warn' });
  }

  applyFilter() {
    const err = this.view.setFilter(this.search.value, { regex: this.regex.on, caseSensitive: this.caseBtn.on });
    setText(this.searchErr, err ? `Not a valid regular expression: ${err}` : '');
    this.search.classList.toggle('invalid', !!err);
  }

  togglePause() {
    this.view.setPaused(!this.view.paused);
  }

  renderState() {
    const v = this.view;
    this.pauseBtn.replaceChildren(icon(v.paused ? 'play' : 'pause'), v.paused ? `Resume${v.pending ? ` (${v.pending} new)` : ''}` : 'Pause');
    this.pauseBtn.setAttribute('aria-pressed', v.paused ? 'true' : 'false');
    this.pauseBtn.classList.toggle('active', v.paused);
    this.followBtn.setAttribute('aria-pressed', v.follow ? 'true' : 'false');
    this.followBtn.classList.toggle('active', v.follow);
    const lines = plural(v.lines.length, 'line');
    setText(this.count, v.filtering ? `${v.matches} of ${lines} match` : lines);
  }

  updateDownload() {
    if (this.worker) {
      this.download.href = this.app.api.downloadUrl(this.worker);
      this.download.setAttribute('download', `${this.worker}.log`);
      this.download.title = `Every log file of ${this.worker}`;
      this.download.hidden = false;
    } else {
      this.download.hidden = true;
    }
  }

  saveView() {
    const blob = new Blob([this.view.text()], { type: 'text/plain' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `${this.worker || 'apm'}-view.log` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 5000);
  }

  focusSearch() {
    this.search.focus();
  }
}

function toggleButton(text, label, onchange) {
  const b = h('button', { type: 'button', class: 'toggle-chip', 'aria-pressed': 'false', 'aria-label': label, title: label, text });
  b.on = false;
  b.addEventListener('click', () => {
    b.on = !b.on;
    b.setAttribute('aria-pressed', b.on ? 'true' : 'false');
    b.classList.toggle('active', b.on);
    onchange();
  });
  return b;
}
