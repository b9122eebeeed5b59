// The app frame: sidebar (navigation, namespaces, daemon controls), top bar (page
// title + the page's toolbar), the page area, the status bar (connection, counts,
// host CPU/RAM, notifications bell).
import { h, replace, setText, toggle, rafThrottle } from './dom.js';
import { icon, logo } from './icons.js';
import { actionButton } from './components/bits.js';
import * as fmt from './format.js';

// Navigation table.  Later pages (terminal, cron jobs, Telegram, AI, tunnels, port
// finder, remote servers) add rows here; nothing is listed before it exists.
export const NAV = [
  { section: 'Processes', items: [{ id: 'workers', label: 'Workers', icon: 'layers', href: '#/workers', routes: ['workers', 'worker', 'new', 'edit'] }] },
  {
    section: 'Logs',
    items: [
      { id: 'logs', label: 'Live Logs', icon: 'activity', href: '#/logs', routes: ['logs'] },
      { id: 'library', label: 'Log Library', icon: 'library', href: '#/library', routes: ['library'] },
      { id: 'volume', label: 'Log Volume', icon: 'volume', href: '#/volume', routes: ['volume'] },
    ],
  },
  {
    section: 'System',
    items: [
      { id: 'server', label: 'Server Info', icon: 'server', href: '#/server', routes: ['server'] },
      { id: 'settings', label: 'Settings', icon: 'settings', href: '#/settings', routes: ['settings'] },
    ],
  },
];

const CONN_TEXT = {
  idle: 'Not connected',
  connecting: 'Connecting…',
  open: 'Connected',
  down: 'Daemon unreachable — retrying',
  ended: 'Session ended',
};

export class Shell {
  constructor(app) {
    this.app = app;
    this.navLinks = new Map();
    this.build();
    this.updateCounts = rafThrottle(() => this.renderCounts());
  }

  build() {
    const app = this.app;
    this.nsList = h('div', { class: 'ns-list', role: 'group', 'aria-label': 'Namespaces' });
    const nav = h('nav', { class: 'nav', 'aria-label': 'Main' });
    for (const group of NAV) {
      const items = group.items.map((item) => {
        const a = h('a', { class: 'nav-link', href: item.href, dataset: { nav: item.id } }, icon(item.icon), h('span', { text: item.label }));
        this.navLinks.set(item.id, { a, item });
        a.addEventListener('click', () => this.closeDrawer());
        return a;
      });
      nav.append(h('div', { class: 'nav-group' }, h('div', { class: 'nav-section', text: group.section }), items,
        group.section === 'Processes' ? this.nsList : null));
    }
    this.hostName = h('span', { class: 'brand-host', text: '' });
    const footer = h('div', { class: 'side-foot' },
      actionButton(app, 'daemon.save', undefined, { variant: 'full', cls: 'side-btn' }),
      actionButton(app, 'session.lock', undefined, { variant: 'full', cls: 'side-btn' }),
      actionButton(app, 'session.logout', undefined, { variant: 'full', cls: 'side-btn' }),
      actionButton(app, 'daemon.shutdown', undefined, { variant: 'full', cls: 'side-btn' }));
    this.sidebar = h('aside', { class: 'sidebar', id: 'sidebar' },
      h('a', { class: 'brand', href: '#/workers', 'aria-label': 'apm — workers' }, logo(), h('span', { class: 'brand-text' }, h('strong', { text: 'apm' }), this.hostName)),
      nav, footer);
    this.scrim = h('div', { class: 'scrim', onclick: () => this.closeDrawer() });

    this.title = h('h1', { class: 'page-title' });
    this.subtitle = h('span', { class: 'page-sub' });
    this.tools = h('div', { class: 'page-tools' });
    this.menuBtn = h('button', { type: 'button', class: 'icon-btn menu-btn', 'aria-label': 'Menu', 'aria-controls': 'sidebar', 'aria-expanded': 'false', onclick: () => this.toggleDrawer() }, icon('menu'));
    const newBtn = actionButton(app, 'worker.new', undefined, { variant: 'full', cls: 'btn-primary new-btn' });
    this.topbar = h('header', { class: 'topbar' }, this.menuBtn, h('div', { class: 'page-heading' }, this.title, this.subtitle), this.tools, newBtn);
    this.page = h('div', { class: 'page', id: 'page' });
    this.scroller = h('main', { class: 'main-scroll', id: 'main', tabindex: '-1' }, this.page);

    this.connDot = h('span', { class: 'conn-dot' });
    this.connText = h('span', { class: 'conn-text' });
    this.counts = h('span', { class: 'sb-counts' });
    this.cpuMeter = meter('CPU');
    this.memMeter = meter('RAM');
    this.bellBadge = h('span', { class: 'badge', hidden: true });
    this.bell = h('button', { type: 'button', class: 'icon-btn bell', 'aria-label': 'Notifications', 'aria-haspopup': 'dialog', 'aria-expanded': 'false', title: 'Notifications (b)', onclick: () => app.toggleBell() }, icon('bell'), this.bellBadge);
    this.statusbar = h('footer', { class: 'statusbar' },
      h('span', { class: 'sb-conn', role: 'status', 'aria-live': 'polite' }, this.connDot, this.connText),
      this.counts, h('span', { class: 'grow' }), this.cpuMeter.el, this.memMeter.el,
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Keyboard shortcuts', title: 'Keyboard shortcuts (?)', onclick: () => app.showHelp() }, icon('keyboard')),
      this.bell);
    this.el = h('div', { class: 'shell' }, this.sidebar, this.scrim, h('div', { class: 'main' }, this.topbar, this.scroller, this.statusbar));
    this.setConnection('connecting');
  }

  // ---------------------------------------------------------------- navigation
  setActive(routeName, query = {}) {
    for (const { a, item } of this.navLinks.values()) {
      const on = item.routes.includes(routeName);
      toggle(a, 'active', on);
      if (on) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    this.activeNs = routeName === 'workers' ? query.ns || (query.status === 'running' ? '@active' : '@all') : '';
    this.renderNamespaces();
  }

  renderNamespaces() {
    const model = this.app.workers;
    const c = model.counts();
    const link = (key, label, n, href, iconName) => {
      const a = h('a', { class: `ns-link ${this.activeNs === key ? 'active' : ''}`, href }, iconName ? icon(iconName) : h('span', { class: 'ns-dot' }),
        h('span', { class: 'ns-name', text: label }), h('span', { class: 'ns-count', text: n }));
      if (this.activeNs === key) a.setAttribute('aria-current', 'true');
      a.addEventListener('click', () => this.closeDrawer());
      return a;
    };
    const items = [link('@all', 'All workers', c.total, '#/workers', null), link('@active', 'Active', c.running, '#/workers?status=running', null)];
    for (const [ns, n] of model.namespaces()) items.push(link(ns, ns, n, `#/workers?ns=${encodeURIComponent(ns)}`, 'tag'));
    replace(this.nsList, items);
  }

  setHeader(title, subtitle = '', tools = []) {
    setText(this.title, title);
    setText(this.subtitle, subtitle);
    replace(this.tools, tools);
    document.title = `${title} · apm`;
  }

  setSubtitle(text) {
    setText(this.subtitle, text);
  }

  toggleDrawer() {
    const open = !this.el.classList.contains('drawer-open');
    toggle(this.el, 'drawer-open', open);
    this.menuBtn.setAttribute('aria-expanded', open ? 'true' : 'false');
  }

  closeDrawer() {
    toggle(this.el, 'drawer-open', false);
    this.menuBtn.setAttribute('aria-expanded', 'false');
  }

  // ---------------------------------------------------------------- status bar
  setConnection(state) {
    this.connDot.className = `conn-dot conn-${state}`;
    setText(this.connText, CONN_TEXT[state] || state);
  }

  setHost(text) {
    setText(this.hostName, text);
  }

  renderCounts() {
    const c = this.app.workers.counts();
    const parts = [h('span', { class: 'sbc tone-ok', title: 'running' }, h('span', { class: 'dot' }), String(c.running), h('span', { class: 'sbc-l', text: ' running' }))];
    if (c.errored) parts.push(h('span', { class: 'sbc tone-err', title: 'errored' }, h('span', { class: 'dot' }), String(c.errored), h('span', { class: 'sbc-l', text: ' errored' })));
    parts.push(h('span', { class: 'sbc tone-muted', title: 'stopped' }, h('span', { class: 'dot' }), String(c.stopped), h('span', { class: 'sbc-l', text: ' stopped' })));
    replace(this.counts, parts);
    this.renderNamespaces();
  }

  setHostLoad(host) {
    if (!host) return;
    this.cpuMeter.set(host.cpu, fmt.percent(host.cpu, 0));
    const mem = host.memory || {};
    this.memMeter.set(mem.percent, `${fmt.bytes(mem.used, 1)} / ${fmt.bytes(mem.total, 0)}`);
  }

  setUnread(n) {
    this.bellBadge.hidden = n === 0;
    setText(this.bellBadge, n > 99 ? '99+' : n);
    this.bell.setAttribute('aria-label', n ? `Notifications, ${n} unread` : 'Notifications');
  }
}

function meter(label) {
  const fill = h('span', { class: 'meter-fill' });
  const value = h('span', { class: 'meter-value', text: '–' });
  const el = h('span', { class: 'meter', title: `Host ${label}` }, h('span', { class: 'meter-label', text: label }), h('span', { class: 'meter-bar' }, fill), value);
  return {
    el,
    set(pct, text) {
      const p = Math.max(0, Math.min(100, pct || 0));
      fill.style.width = `${p}%`;
      el.dataset.level = p > 90 ? 'err' : p > 70 ? 'warn' : 'ok';
      setText(value, text);
    },
  };
}
