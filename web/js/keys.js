// Keyboard shortcuts, read from the actions table (actions.js): single keys ('s', 'R',
// '?', 'Delete') and two-key sequences ('g w').  Ignored while typing in a field, while a
// dialog or the lock screen is up, and with Ctrl/Alt/Meta held (browser shortcuts stay).
import { ACTIONS } from './actions.js';
import { isTyping } from './dom.js';

const SEQUENCE_TIMEOUT = 1200;

export class Shortcuts {
  constructor(ctx) {
    this.ctx = ctx;
    this.prefix = '';
    this.timer = 0;
    this.single = new Map();
    this.sequences = new Map();
    for (const a of ACTIONS) {
      for (const spec of a.keys || []) {
        const target = spec.includes(' ') ? this.sequences : this.single;
        if (!target.has(spec)) target.set(spec, []);
        target.get(spec).push(a);
      }
    }
    this.starters = new Set([...this.sequences.keys()].map((s) => s.split(' ')[0]));
    this.onKey = (ev) => this.handle(ev);
  }

  attach() {
    document.addEventListener('keydown', this.onKey);
  }

  detach() {
    document.removeEventListener('keydown', this.onKey);
  }

  applies(a) {
    if (a.scope === 'global') return true;
    if (a.scope === 'list') return this.ctx.route.name === 'workers';
    if (a.scope === 'worker') return !!this.ctx.currentWorker();
    return false;
  }

  handle(ev) {
    if (ev.defaultPrevented || ev.ctrlKey || ev.metaKey || ev.altKey || ev.isComposing) return;
    if (isTyping(ev.target) || !this.ctx.shortcutsActive()) return;
    const key = ev.key;
    // Let Enter/Space activate the focused button or link as usual.
    if ((key === 'Enter' || key === ' ') && ev.target instanceof Element && ev.target.closest('button, a, summary, [role="menuitem"]')) return;
    if (this.prefix) {
      const seq = `${this.prefix} ${key}`;
      this.prefix = '';
      clearTimeout(this.timer);
      const hit = (this.sequences.get(seq) || []).find((a) => this.applies(a));
      if (hit) {
        ev.preventDefault();
        this.ctx.perform(hit, hit.scope === 'worker' ? this.ctx.currentWorker() : null);
      }
      return;
    }
    const hit = (this.single.get(key) || []).find((a) => this.applies(a));
    if (hit) {
      ev.preventDefault();
      const w = hit.scope === 'global' ? null : this.ctx.currentWorker();
      this.ctx.perform(hit, w);
      return;
    }
    if (this.starters.has(key)) {
      ev.preventDefault();
      this.prefix = key;
      this.timer = setTimeout(() => { this.prefix = ''; }, SEQUENCE_TIMEOUT);
    }
  }
}
