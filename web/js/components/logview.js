// The log viewer shared by Live Logs, the worker page and the Log Library.
// Lines are data ({ts, worker, index, stream, text}); each is rendered with text
// nodes (ANSI colours become spans), level-coloured, searchable (plain or regex),
// pausable and capped at `max` lines.  Appends are batched once per frame.
import { h } from '../dom.js';
import { renderAnsi, stripAnsi } from '../ansi.js';
import { clock } from '../format.js';

const LEVELS = [
  ['error', /\b(fatal|panic|crit(ical)?|error|err|exception|traceback|emerg(ency)?|alert)\b/i],
  ['warn', /\b(warn(ing)?)\b/i],
  ['debug', /\b(debug|trace)\b/i],
  ['info', /\b(info|notice)\b/i],
];

export function levelOf(plain) {
  const head = plain.length > 300 ? plain.slice(0, 300) : plain;
  for (const [lvl, re] of LEVELS) if (re.test(head)) return lvl;
  return '';
}

function hue(name) {
  let x = 0;
  for (let i = 0; i < name.length; i += 1) x = (x * 31 + name.charCodeAt(i)) >>> 0;
  return x % 8;
}

/** Build a filter predicate; returns {test, ranges, error}. */
export function makeFilter(pattern, { regex = false, caseSensitive = false } = {}) {
  if (!pattern) return null;
  let re;
  try {
    re = new RegExp(regex ? pattern : pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), caseSensitive ? 'g' : 'gi');
  } catch (err) {
    return { error: err.message };
  }
  return {
    test: (s) => {
      re.lastIndex = 0;
      return re.test(s);
    },
    ranges: (s) => {
      const out = [];
      re.lastIndex = 0;
      let m;
      while ((m = re.exec(s)) !== null && out.length < 50) {
        if (m[0] === '') {
          re.lastIndex += 1;
          continue;
        }
        out.push([m.index, m.index + m[0].length]);
      }
      return out;
    },
  };
}

export class LogView extends EventTarget {
  constructor({ showWorker = false, max = 5000, empty = 'Waiting for output…', label = 'Log output' } = {}) {
    super();
    this.showWorker = showWorker;
    this.max = max;
    this.lines = [];
    this.queue = [];
    this.paused = false;
    this.pending = 0;
    this.follow = true;
    this.filter = null;
    this.streamOnly = null;
    this.levelAtLeast = null;
    this.matches = 0;
    this.scheduled = false;
    this.emptyText = empty;
    this.body = h('div', { class: 'log-lines' });
    this.empty = h('div', { class: 'log-empty', text: empty });
    this.jump = h('button', { type: 'button', class: 'btn btn-sm log-jump', hidden: true, onclick: () => this.setFollow(true) }, 'Jump to latest ↓');
    this.el = h('div', { class: 'logview', role: 'log', 'aria-label': label, tabindex: '0' }, this.empty, this.body);
    this.wrap = h('div', { class: 'logview-wrap' }, this.el, this.jump);
    this.el.addEventListener('scroll', () => this.onScroll(), { passive: true });
  }

  static line(raw, worker) {
    const text = raw.text == null ? '' : String(raw.text);
    const plain = stripAnsi(text);
    return {
      ts: raw.ts,
      worker: raw.worker || worker || '',
      index: raw.index,
      stream: raw.stream || 'out',
      text,
      plain,
      level: raw.stream === 'apm' ? 'apm' : levelOf(plain),
      el: null,
    };
  }

  /** Replace everything (a backlog / tail). */
  setLines(raws, worker) {
    this.queue = [];
    this.pending = 0;
    this.lines = raws.slice(-this.max).map((r) => LogView.line(r, worker));
    this.renderAll();
  }

  append(raws, worker) {
    for (const r of raws) this.queue.push(LogView.line(r, worker));
    if (this.queue.length > this.max) this.queue.splice(0, this.queue.length - this.max);
    if (this.paused) {
      this.pending = this.queue.length;
      this.changed();
      return;
    }
    this.schedule();
  }

  schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  flush() {
    if (!this.queue.length) return;
    const batch = this.queue;
    this.queue = [];
    this.pending = 0;
    const frag = document.createDocumentFragment();
    for (const line of batch) {
      this.lines.push(line);
      if (this.matchesFilter(line)) {
        frag.append(this.render(line));
        if (this.filtering) this.matches += 1;
      }
    }
    this.body.append(frag);
    this.trim();
    this.empty.hidden = this.lines.length > 0;
    if (this.follow) this.el.scrollTop = this.el.scrollHeight;
    this.changed();
  }

  trim() {
    const extra = this.lines.length - this.max;
    if (extra <= 0) return;
    const gone = this.lines.splice(0, extra);
    for (const line of gone) {
      if (line.el) {
        line.el.remove();
        if (this.filtering) this.matches -= 1;
      }
    }
  }

  matchesFilter(line) {
    if (this.streamOnly && line.stream !== this.streamOnly) return false;
    if (this.levelAtLeast === 'error' && line.level !== 'error') return false;
    if (this.levelAtLeast === 'warn' && line.level !== 'error' && line.level !== 'warn') return false;
    return !this.filter || this.filter.test(line.plain);
  }

  get filtering() {
    return !!(this.filter || this.streamOnly || this.levelAtLeast);
  }

  /** Only errors ('error'), warnings and errors ('warn'), or everything (null). */
  setLevel(level) {
    this.levelAtLeast = level || null;
    this.renderAll();
  }

  /** Show only one stream ('out' / 'err'), or every one (null). */
  setStream(stream) {
    this.streamOnly = stream || null;
    this.renderAll();
  }

  render(line) {
    const text = h('span', { class: 'll-text' });
    if (this.filter && this.filter.ranges) {
      let at = 0;
      for (const [a, b] of this.filter.ranges(line.plain)) {
        if (a > at) text.append(line.plain.slice(at, a));
        text.append(h('mark', { text: line.plain.slice(a, b) }));
        at = b;
      }
      if (at < line.plain.length) text.append(line.plain.slice(at));
    } else {
      renderAnsi(text, line.text);
    }
    const src = this.showWorker
      ? `${line.worker}${line.index ? `#${line.index}` : ''}`
      : line.index ? `#${line.index}` : line.stream === 'apm' ? 'apm' : '';
    const el = h('div', { class: `ll s-${line.stream}${line.level ? ` lvl-${line.level}` : ''}` },
      h('span', { class: 'll-ts', text: line.ts == null ? '' : clock(line.ts) }),
      src ? h('span', { class: `ll-src c${this.showWorker ? hue(line.worker) : (line.index || 0) % 8}`, text: src }) : null,
      text);
    line.el = el;
    return el;
  }

  renderAll() {
    const frag = document.createDocumentFragment();
    this.matches = 0;
    for (const line of this.lines) {
      line.el = null;
      if (this.matchesFilter(line)) {
        frag.append(this.render(line));
        this.matches += 1;
      }
    }
    this.body.replaceChildren(frag);
    this.empty.hidden = this.lines.length > 0;
    this.empty.textContent = this.emptyText;
    if (this.follow) this.el.scrollTop = this.el.scrollHeight;
    this.changed();
  }

  clear() {
    this.lines = [];
    this.queue = [];
    this.pending = 0;
    this.body.replaceChildren();
    this.empty.hidden = false;
    this.matches = 0;
    this.changed();
  }

  setFilter(pattern, opts) {
    const f = makeFilter(pattern, opts);
    if (f && f.error) return f.error;
    this.filter = f;
    this.renderAll();
    return null;
  }

  setPaused(paused) {
    this.paused = paused;
    if (!paused) this.schedule();
    this.changed();
  }

  setFollow(follow) {
    this.follow = follow;
    this.jump.hidden = follow;
    if (follow) this.el.scrollTop = this.el.scrollHeight;
    this.changed();
  }

  onScroll() {
    const atBottom = this.el.scrollHeight - this.el.scrollTop - this.el.clientHeight < 40;
    if (!atBottom && this.follow) this.setFollow(false);
    else if (atBottom && !this.follow) this.setFollow(true);
  }

  /** The lines as plain text (what "Download view" saves). */
  text() {
    return this.lines
      .filter((l) => this.matchesFilter(l))
      .map((l) => `${clock(l.ts)} ${l.worker}${l.index ? `#${l.index}` : ''} ${l.stream} | ${l.plain}`)
      .join('\n');
  }

  changed() {
    this.dispatchEvent(new CustomEvent('change'));
  }
}
