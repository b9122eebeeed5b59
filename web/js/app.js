// The app root (the only global state): auth flow, shell, router, the live stream,
// the models, and `perform()` — how every action of actions.js runs.
import { Api } from './api.js';
import { replace } from './dom.js';
import { NoticesModel, SettingsModel, WorkersModel } from './store.js';
import { applyUi, invalidateColors } from './theme.js';
import { Shell } from './shell.js';
import { Shortcuts } from './keys.js';
import { Toasts } from './components/toast.js';
import { confirmDialog, promptDialog } from './components/modal.js';
import { closeMenu, openMenu } from './components/menu.js';
import { BellPanel, SessionVeil, showHelp } from './components/overlays.js';
import { WORKER_MENU, action, labelOf, shortcutText } from './actions.js';
import { Activity, AuthScreen, LockScreen } from './views/auth.js';
import { WorkersView } from './views/workers.js';

// The Workers page ships with the first load; every other page is a module of its own,
// fetched on first use (and warmed up once the first rows are on screen).
const lazy = (load) => {
  let p = null;
  return () => (p = p || load().catch((err) => { p = null; throw err; }));
};
const VIEWS = {
  workers: () => Promise.resolve(WorkersView),
  editor: lazy(() => import('./views/editor.js').then((m) => m.EditorView)),
  worker: lazy(() => import('./views/worker.js').then((m) => m.WorkerView)),
  logs: lazy(() => import('./views/logs.js').then((m) => m.LogsView)),
  library: lazy(() => import('./views/library.js').then((m) => m.LibraryView)),
  volume: lazy(() => import('./views/volume.js').then((m) => m.VolumeView)),
  server: lazy(() => import('./views/server.js').then((m) => m.ServerView)),
  settings: lazy(() => import('./views/settings.js').then((m) => m.SettingsView)),
  notfound: lazy(() => import('./views/notfound.js').then((m) => m.NotFoundView)),
};
const ROUTES = [
  ['workers', /^\/workers\/?$/, VIEWS.workers],
  ['new', /^\/new$/, VIEWS.editor],
  ['edit', /^\/workers\/([^/]+)\/edit$/, VIEWS.editor],
  ['worker', /^\/workers\/([^/]+)$/, VIEWS.worker],
  ['logs', /^\/logs(?:\/([^/]+))?$/, VIEWS.logs],
  ['library', /^\/library(?:\/([^/]+))?$/, VIEWS.library],
  ['volume', /^\/volume$/, VIEWS.volume],
  ['server', /^\/server$/, VIEWS.server],
  ['settings', /^\/settings(?:\/(\w+))?$/, VIEWS.settings],
];

export function parseHash(hash) {
  const raw = (hash || '').replace(/^#/, '') || '/workers';
  const [path, qs] = raw.split('?');
  const query = Object.fromEntries(new URLSearchParams(qs || ''));
  for (const [name, re, load] of ROUTES) {
    const m = re.exec(path === '/' ? '/workers' : path);
    if (m) return { name, load, path, query, arg: m[1] ? decodeURIComponent(m[1]) : null };
  }
  return { name: 'notfound', load: VIEWS.notfound, path, query, arg: null };
}

class App {
  constructor(root) {
    this.root = root;
    this.api = new Api();
    this.workers = new WorkersModel();
    this.settings = new SettingsModel();
    this.notices = new NoticesModel();
    this.live = this.api.stream();
    this.route = { name: '', query: {} };
    this.view = null;
    this.shell = null;
    this.status = null;
    this.screen = null;
    this.lock = null;
    this.shortcuts = new Shortcuts(this);
    this.activity = new Activity(this);
    this.toasts = new Toasts(document.body);
    applyUi(this.settings.values.ui);
    window.matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => this.applySettings({}));
    this.settings.addEventListener('change', (ev) => this.applySettings(ev.detail));
    this.wire();
  }

  // ---------------------------------------------------------------- boot and auth
  async start() {
    performance.mark('apm-start');
    let status;
    try {
      status = await this.api.authStatus();
      performance.mark('apm-auth');
    } catch (err) {
      this.showScreen(new AuthScreen(this, 'offline', { error: err }));
      return;
    }
    this.decide(status);
  }

  decide(status) {
    this.status = status;
    if (status.setup_required) this.showScreen(new AuthScreen(this, 'setup', status));
    else if (!status.authenticated) this.showScreen(new AuthScreen(this, 'login', status));
    else if (status.session && status.session.locked) this.showLock(status);
    else this.enter(status);
  }

  showScreen(screen) {
    this.teardown();
    this.screen = screen;
    replace(this.root, screen.el);
    screen.focus();
  }

  /** Leave the app (logout, session gone): stop everything that talks to the daemon. */
  teardown() {
    this.live.stop();
    this.activity.stop();
    this.shortcuts.detach();
    if (this.view) this.view.destroy();
    this.view = null;
    this.shell = null;
    this.workers.snapshot({ workers: [] }); // nothing of the old session stays on screen
    this.workers.loaded = false;
    if (this.lock) this.lock.el.remove();
    this.lock = null;
    if (this.veil) this.veil.hide();
    closeMenu();
    for (const d of document.querySelectorAll('dialog[open]')) d.close();
  }

  async enter(status) {
    this.status = status;
    this.screen = null;
    if (!this.shell) {
      this.shell = new Shell(this);
      this.bell = new BellPanel(this);
      this.veil = new SessionVeil(this);
      replace(this.root, this.shell.el, this.bell.el, this.veil.el);
      window.addEventListener('hashchange', this.onHash);
    }
    this.shortcuts.attach();
    this.activity.start(status.session);
    this.firstList();
    this.onHash();
    this.loadExtras();
  }

  /** The worker list fetched while the modules loaded (index.html preloads it): rows show
   *  before the live stream's snapshot arrives; the snapshot then takes over. */
  async firstList() {
    if (this.workers.loaded) return;
    try {
      const data = await this.api.workers({ quiet: true });
      if (!this.workers.loaded && data && Array.isArray(data.workers)) {
        this.workers.snapshot({ workers: data.workers });
        if (this.shell) this.shell.updateCounts();
      }
    } catch {
      /* the stream's snapshot comes anyway */
    }
  }

  async loadExtras() {
    const [settings, schema, notes] = await Promise.allSettled([this.api.settings(), this.api.settingsSchema(), this.api.notifications()]);
    if (schema.status === 'fulfilled') this.settings.schema = schema.value.settings;
    if (settings.status === 'fulfilled') this.settings.set(settings.value);
    if (notes.status === 'fulfilled') this.notices.load(notes.value.notifications || []);
    this.updateStream();
    setTimeout(() => {
      if (!this.shell) return;
      this.api.systemInfo().then((info) => this.shell && this.shell.setHost(info.host.hostname)).catch(() => {});
      for (const load of Object.values(VIEWS)) load().catch(() => {});
    }, 1500);
  }

  onHash = async () => {
    if (!this.shell) return;
    const route = parseHash(window.location.hash);
    const seq = (this.navSeq = (this.navSeq || 0) + 1);
    this.route = route;
    closeMenu();
    this.shell.setActive(route.name, route.query);
    let View;
    try {
      View = await route.load();
    } catch (err) {
      this.toasts.error(err, 'Cannot load the page');
      return;
    }
    if (seq !== this.navSeq || !this.shell) return;
    if (this.view && this.view.constructor === View && this.view.update && this.view.update(route)) {
      this.updateStream();
      return;
    }
    if (this.view) this.view.destroy();
    this.view = new View(this, route);
    replace(this.shell.page, this.view.el);
    this.shell.page.dataset.view = route.name;
    this.shell.scroller.scrollTop = 0;
    this.view.mount();
    this.updateStream();
  };

  go(path) {
    const target = `#${path}`;
    if (window.location.hash === target) this.onHash();
    else window.location.hash = target;
  }

  // ---------------------------------------------------------------- the live stream
  updateStream() {
    if (!this.shell || this.lock) return;
    const extra = (this.view && this.view.stream && this.view.stream()) || {};
    this.live.maxDelay = Math.max(1, this.settings.get('general', 'health_interval', 5)) * 1000;
    this.live.start({
      workers: true,
      stats: this.settings.get('general', 'auto_refresh', true) !== false,
      notify: true,
      logs: extra.logs || [],
      tail: extra.tail || 0,
    });
  }

  wire() {
    const on = (name, fn) => this.live.addEventListener(name, (ev) => fn(ev.detail));
    on('snapshot', (d) => {
      performance.mark('apm-snapshot');
      this.workers.snapshot(d);
      if (this.shell) this.shell.updateCounts();
      if (d.stats && this.shell) this.shell.setHostLoad(d.stats.host);
    });
    on('workers', (d) => {
      this.workers.upsert(d.workers || []);
      if (this.shell) this.shell.updateCounts();
    });
    on('removed', (d) => {
      this.workers.remove(d.names || []);
      if (this.shell) this.shell.updateCounts();
    });
    on('stats', (d) => {
      this.workers.applyStats(d);
      if (this.shell) this.shell.setHostLoad(d.host);
    });
    on('log', (d) => this.view && this.view.onLog && this.view.onLog(d));
    on('settings', (d) => this.settings.receive(d));
    on('notify', (d) => {
      this.notices.add(d);
      if (d.level === 'error' || d.kind === 'alert') this.toasts.show(d.message, { tone: d.level === 'error' ? 'err' : 'warn' });
    });
    on('logout', () => this.sessionGone('Your session ended. Log in again.'));
    on('locked', () => this.showLock());
    on('state', (state) => {
      if (this.shell) this.shell.setConnection(state);
      if (state === 'open' && this.veil) this.veil.hide();
    });
    on('bye', () => this.veil && this.veil.show('bye'));
    on('retry', (d) => {
      if (this.veil && d.attempt >= 2) this.veil.show('down');
      else if (this.veil && !this.veil.el.hidden) this.veil.tick();
    });
    on('reachable', () => this.recover());
    this.api.addEventListener('unauthorized', () => this.sessionGone('Your session ended. Log in again.'));
    this.api.addEventListener('locked', () => this.showLock());
    this.notices.addEventListener('change', () => {
      if (this.shell) this.shell.setUnread(this.notices.unread);
      if (this.bell && this.bell.open) this.bell.render();
    });
  }

  /** The daemon answers again: is the session still good? */
  async recover() {
    let status;
    try {
      status = await this.api.authStatus();
    } catch {
      this.live.schedule();
      return;
    }
    if (!status.authenticated || status.setup_required) {
      this.decide(status);
      return;
    }
    if (status.session && status.session.locked) {
      this.showLock(status);
      return;
    }
    this.live.resume();
    this.api.notifications().then((r) => this.notices.load(r.notifications || [])).catch(() => {});
  }

  sessionGone(message) {
    if (this.screen && this.screen.mode !== 'offline') return;
    this.api.authStatus().then((st) => {
      if (st.authenticated && !(st.session && st.session.locked)) return;
      this.showScreen(new AuthScreen(this, st.setup_required ? 'setup' : 'login', st, message));
    }).catch(() => this.showScreen(new AuthScreen(this, 'login', this.status || {}, message)));
  }

  // ---------------------------------------------------------------- lock
  async lockNow() {
    try {
      await this.api.lock();
    } catch (err) {
      if (err.status !== 423) throw err;
    }
    this.showLock();
  }

  async showLock(status = null) {
    // Several triggers (stream event, a 423, the timer) can race: only the first builds the screen.
    if (this.lock || this.lockPending) return;
    this.lockPending = true;
    try {
      await this.buildLock(status);
    } finally {
      this.lockPending = false;
    }
  }

  async buildLock(status) {
    this.live.stop();
    this.activity.stop();
    closeMenu();
    for (const d of document.querySelectorAll('dialog[open]')) d.close();
    let st = status;
    if (!st) {
      try {
        st = await this.api.authStatus();
      } catch {
        st = this.status || {};
      }
    }
    if (!st.authenticated) {
      this.showScreen(new AuthScreen(this, 'login', st, 'Your session ended. Log in again.'));
      return;
    }
    if (this.lock) return;
    this.lock = new LockScreen(this, st);
    this.root.append(this.lock.el);
    this.setInert(true);
    this.lock.focus();
  }

  unlocked(status) {
    if (this.lock) this.lock.el.remove();
    this.lock = null;
    this.setInert(false);
    if (!this.shell) {
      this.enter(status);
      return;
    }
    this.status = status;
    this.activity.start(status.session);
    this.updateStream();
  }

  async logout() {
    this.live.stop();
    this.activity.stop();
    try {
      await this.api.logout();
    } finally {
      this.api.csrf = '';
      this.showScreen(new AuthScreen(this, 'login', { ...(this.status || {}), authenticated: false }, 'You are logged out.'));
    }
  }

  setInert(on) {
    if (!this.shell) return;
    const inert = on || !!this.lock || (this.veil && !this.veil.el.hidden);
    this.shell.el.inert = inert;
    this.shell.el.classList.toggle('dimmed', inert);
  }

  shortcutsActive() {
    return !!this.shell && !this.lock && !this.screen && !document.querySelector('dialog[open]') && !(this.veil && !this.veil.el.hidden);
  }

  // ---------------------------------------------------------------- actions
  async perform(a, w = null) {
    if (!a.enabled(this, w)) return;
    const question = a.confirm ? a.confirm(this, w) : null;
    if (question && !(await confirmDialog(question))) return;
    try {
      await a.run(this, w);
    } catch (err) {
      if (err && (err.status === 401 || err.status === 423)) return;
      const subject = `${labelOf(a, w)}${w ? ` ${w.name}` : ''}`;
      this.toasts.error(err, subject.replace(/…$/, ''));
    }
  }

  workerMenu(w, at) {
    if (!w) return;
    const items = WORKER_MENU.map((id) => {
      if (id === 'separator') return id;
      const a = action(id);
      return { label: labelOf(a, w), icon: a.icon, shortcut: shortcutText(a), disabled: !a.enabled(this, w), danger: a.danger, run: () => this.perform(a, w) };
    });
    openMenu(items, at, { label: `Actions for ${w.name}` });
  }

  currentWorker() {
    if (this.view && this.view.currentWorker) return this.view.currentWorker();
    return null;
  }

  selectionChanged() {}

  confirm(opts) {
    return confirmDialog(opts);
  }

  prompt(opts) {
    return promptDialog(opts);
  }

  focusSearch() {
    if (this.view && this.view.focusSearch) this.view.focusSearch();
    else {
      this.go('/workers');
      setTimeout(() => this.view && this.view.focusSearch && this.view.focusSearch(), 50);
    }
  }

  toggleBell() {
    if (this.bell) this.bell.toggle();
  }

  showHelp() {
    showHelp();
  }

  now() {
    return this.live.now();
  }

  // ---------------------------------------------------------------- settings
  async saveSettings(patch) {
    const values = await this.api.updateSettings(patch);
    this.settings.set(values);
    return values;
  }

  /** Settings changed (`detail.remote`: in another tab or browser, pushed on the stream). */
  applySettings(detail = {}) {
    applyUi(this.settings.values.ui || {});
    invalidateColors();
    if (this.view && this.view.settingsChanged) this.view.settingsChanged(detail);
    const timeout = this.settings.get('security', 'lock_timeout', null);
    if (detail.remote && this.shell && !this.lock && timeout != null && timeout !== this.activity.timeout) this.activity.start({ lock_timeout: timeout });
    if (this.shell) this.updateStream();
  }
}

const root = document.getElementById('app');
const app = new App(root);
root.classList.remove('boot');
app.start();
