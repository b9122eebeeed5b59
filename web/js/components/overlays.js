// App-wide overlays: the keyboard help (built from the actions table), the
// notifications panel, the "Session ended" veil shown while the daemon is away.
import { h, replace, setText } from '../dom.js';
import { icon } from '../icons.js';
import { ACTIONS, keyChips, labelOf } from '../actions.js';
import { openDialog } from './modal.js';
import * as fmt from '../format.js';

export function showHelp() {
  const groups = new Map();
  for (const a of ACTIONS) {
    if (!a.keys || !a.keys.length) continue;
    if (!groups.has(a.group)) groups.set(a.group, []);
    groups.get(a.group).push(a);
  }
  const sections = [];
  for (const [group, list] of groups) {
    sections.push(h('section', { class: 'help-group' },
      h('h3', { text: group }),
      h('dl', { class: 'help-list' }, list.map((a) => [
        h('dt', null, a.keys.map((spec, i) => [i ? h('span', { class: 'muted', text: ' or ' }) : null,
          keyChips(spec).map((k, j) => [j ? h('span', { class: 'muted', text: ' then ' }) : null, h('kbd', { text: k })])])),
        h('dd', { text: labelOf(a, { enabled: true }) + (a.scope === 'worker' ? ' (selected worker)' : '') }),
      ]))));
  }
  const body = h('div', { class: 'help' },
    h('p', { class: 'muted', text: 'Shortcuts work anywhere except while typing in a field. Worker shortcuts act on the selected row or the open worker.' }),
    h('div', { class: 'help-grid' }, sections));
  return openDialog({ title: 'Keyboard shortcuts', body, wide: true, className: 'modal-help', actions: [{ label: 'Close', value: true, tone: 'primary', autofocus: true }] });
}

const LEVEL_ICON = { error: 'error', warning: 'warning', info: 'info' };

/** The bell's panel: the latest notifications, newest first. */
export class BellPanel {
  constructor(app) {
    this.app = app;
    this.list = h('ol', { class: 'bell-list' });
    this.el = h('section', { class: 'bell-panel', role: 'dialog', 'aria-label': 'Notifications', hidden: true, tabindex: '-1' },
      h('header', { class: 'bell-head' },
        h('h2', { text: 'Notifications' }),
        h('button', { type: 'button', class: 'btn btn-sm btn-ghost', text: 'Mark all read', onclick: () => app.notices.markRead() }),
        h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close', onclick: () => this.close() }, icon('x'))),
      this.list);
    this.el.addEventListener('keydown', (ev) => { if (ev.key === 'Escape') { ev.stopPropagation(); this.close(); } });
    this.away = (ev) => {
      if (!this.el.contains(ev.target) && !ev.target.closest('.bell')) this.close();
    };
  }

  get open() {
    return !this.el.hidden;
  }

  toggle() {
    if (this.open) this.close();
    else this.show();
  }

  show() {
    this.render();
    this.el.hidden = false;
    this.app.shell.bell.setAttribute('aria-expanded', 'true');
    this.el.focus();
    document.addEventListener('pointerdown', this.away, true);
  }

  close() {
    if (!this.open) return;
    this.el.hidden = true;
    this.app.shell.bell.setAttribute('aria-expanded', 'false');
    document.removeEventListener('pointerdown', this.away, true);
    this.app.notices.markRead();
  }

  render() {
    const items = this.app.notices.items.slice(0, 60);
    const seen = this.app.notices.seen;
    if (!items.length) {
      replace(this.list, h('li', { class: 'bell-empty', text: 'No events yet. Crashes, restarts, starts, stops and log alerts show up here.' }));
      return;
    }
    replace(this.list, items.map((n) => h('li', { class: `bell-item lvl-${n.level} ${n.id > seen ? 'unread' : ''}` },
      icon(LEVEL_ICON[n.level] || 'info'),
      h('div', { class: 'bell-body' },
        h('div', { class: 'bell-msg', text: n.message }),
        h('div', { class: 'bell-meta' },
          n.worker ? h('a', { href: `#/workers/${encodeURIComponent(n.worker)}`, text: n.worker, onclick: () => this.close() }) : null,
          h('span', { text: ` · ${n.kind} · ${fmt.ago(n.ts, this.app.now())}` }))))));
  }
}

/** The dimmed page with "Session ended" while the daemon is unreachable. */
export class SessionVeil {
  constructor(app) {
    this.app = app;
    this.detail = h('p', { class: 'veil-detail' });
    this.countdown = h('p', { class: 'veil-retry muted' });
    this.el = h('div', { class: 'veil', role: 'alertdialog', 'aria-modal': 'true', 'aria-labelledby': 'veil-title', hidden: true },
      h('div', { class: 'veil-card' },
        h('div', { class: 'veil-icon' }, icon('power')),
        h('h2', { id: 'veil-title', text: 'Session ended' }),
        this.detail, this.countdown,
        h('div', { class: 'veil-actions' },
          h('button', { type: 'button', class: 'btn btn-primary', onclick: () => app.live.retryNow() }, icon('reload'), 'Reconnect now'),
          h('button', { type: 'button', class: 'btn btn-ghost', onclick: () => window.location.reload() }, 'Refresh page'))));
    this.timer = 0;
  }

  show(reason) {
    setText(this.detail, reason === 'bye'
      ? 'The apm daemon shut down. The page reconnects by itself when it is back.'
      : 'The apm daemon is not answering. The page reconnects by itself when it is back.');
    if (this.el.hidden) {
      this.el.hidden = false;
      this.app.setInert(true);
      clearInterval(this.timer);
      this.timer = setInterval(() => this.tick(), 500);
    }
    this.tick();
  }

  tick() {
    const left = Math.max(0, Math.ceil((this.app.live.nextTry - Date.now()) / 1000));
    setText(this.countdown, left > 0 ? `Trying again in ${left} s…` : 'Trying to reconnect…');
  }

  hide() {
    if (this.el.hidden) return;
    this.el.hidden = true;
    clearInterval(this.timer);
    this.app.setInert(false);
  }
}
