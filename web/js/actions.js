// THE actions table.  One row per thing the user can do: it drives the row and
// page buttons, the context menus, the keyboard shortcuts and the `?` overlay.
//
//   id        stable name (tests and buttons refer to it)
//   label     text, or fn(worker) -> text
//   icon      icons.js name
//   keys      shortcuts: a key as KeyboardEvent.key gives it ('s', 'L', '?', 'Delete'),
//             or a two-key sequence 'g w'
//   scope     'worker' (needs a worker: the selected row or the open worker page),
//             'global', or 'list' (the Workers page)
//   group     heading in the help overlay
//   enabled   fn(ctx, worker) -> bool (greys buttons, skips shortcuts)
//   run       fn(ctx, worker) -> promise
//   confirm   fn(ctx, worker) -> {title, message, confirmLabel} or null (asks first)
//   danger    shown in red
import { RUNNING_STATES } from './store.js';

const IDLE = new Set(['stopped', 'exited', 'errored', 'disabled']);

export function canStart(w) {
  return !!w && w.enabled && (w.desired !== 'running' || IDLE.has(w.status) || w.status === 'partial');
}

/** Something runs or is pending (a start, a restart in backoff, a stop in progress). */
export function canStop(w) {
  return !!w && !IDLE.has(w.status);
}

/** Which of Start / Stop a row shows (a disabled worker shows a greyed Start). */
export function showsStart(w) {
  return !canStop(w);
}

function workerCall(verb, done) {
  return async (ctx, w) => {
    const result = await ctx.api.workerAction(w.name, verb);
    if (result && result.name && result.status) ctx.workers.upsert([result]);
    if (done) ctx.toasts.show(done(w), { tone: 'ok' });
  };
}

const askStop = (verb) => (ctx, w) => (ctx.settings.get('general', 'confirm_stop', false)
  ? { title: `${verb} ${w.name}?`, message: `${verb} every instance of ${w.name}.`, confirmLabel: verb }
  : null);

export const ACTIONS = [
  // ---------------------------------------------------------------- one worker
  {
    id: 'worker.start', label: 'Start', icon: 'play', keys: ['s'], scope: 'worker', group: 'Worker',
    enabled: (ctx, w) => canStart(w),
    run: workerCall('start'),
  },
  {
    id: 'worker.stop', label: 'Stop', icon: 'stop', keys: ['x'], scope: 'worker', group: 'Worker',
    enabled: (ctx, w) => canStop(w),
    confirm: askStop('Stop'),
    run: workerCall('stop'),
  },
  {
    id: 'worker.restart', label: 'Restart', icon: 'restart', keys: ['r'], scope: 'worker', group: 'Worker',
    enabled: (ctx, w) => !!w && w.enabled,
    confirm: askStop('Restart'),
    run: workerCall('restart', (w) => `${w.name} restarted`),
  },
  {
    id: 'worker.reload', label: 'Reload', icon: 'reload', keys: ['R'], scope: 'worker', group: 'Worker',
    enabled: (ctx, w) => !!w && w.enabled && RUNNING_STATES.has(w.status),
    confirm: askStop('Reload'),
    run: workerCall('reload', (w) => `${w.name} reloaded with its current config`),
  },
  {
    id: 'worker.logs', label: 'Logs', icon: 'logs', keys: ['l'], scope: 'worker', group: 'Worker',
    enabled: (ctx, w) => !!w,
    run: async (ctx, w) => ctx.go(`/logs/${encodeURIComponent(w.name)}`),
  },
  {
    id: 'worker.edit', label: 'Edit', icon: 'edit', keys: ['e'], scope: 'worker', group: 'Worker',
    enabled: (ctx, w) => !!w,
    run: async (ctx, w) => ctx.go(`/workers/${encodeURIComponent(w.name)}/edit`),
  },
  {
    id: 'worker.toggle', label: (w) => (w && !w.enabled ? 'Enable' : 'Disable'), icon: 'toggle', keys: ['d'],
    scope: 'worker', group: 'Worker',
    enabled: (ctx, w) => !!w,
    run: async (ctx, w) => {
      const result = await ctx.api.workerAction(w.name, w.enabled ? 'disable' : 'enable');
      if (result && result.name && result.status) ctx.workers.upsert([result]);
      ctx.toasts.show(`${w.name} ${w.enabled ? 'disabled' : 'enabled'}`, { tone: 'ok' });
    },
  },
  {
    id: 'worker.copy', label: 'Duplicate…', icon: 'copy', keys: [], scope: 'worker', group: 'Worker',
    enabled: (ctx, w) => !!w,
    run: async (ctx, w) => {
      const name = await ctx.prompt({ title: `Duplicate ${w.name}`, label: 'Name of the copy', value: `${w.name}-copy`, confirmLabel: 'Duplicate' });
      if (!name) return;
      await ctx.api.copyWorker(w.name, name);
      ctx.toasts.show(`${w.name} copied to ${name}`, { tone: 'ok' });
    },
  },
  {
    id: 'worker.signal', label: 'Send signal…', icon: 'zap', keys: [], scope: 'worker', group: 'Worker',
    enabled: (ctx, w) => !!w && (w.instances_running || 0) > 0,
    run: async (ctx, w) => {
      const sig = await ctx.prompt({ title: `Send a signal to ${w.name}`, label: 'Signal', value: 'SIGHUP', confirmLabel: 'Send', hint: 'A name (SIGHUP, USR1, TERM…) or a number; every running instance gets it.' });
      if (!sig) return;
      const r = await ctx.api.signalWorker(w.name, /^\d+$/.test(sig) ? Number(sig) : sig);
      ctx.toasts.show(`${r.signal || sig} sent to ${(r.sent || []).length} instance(s) of ${w.name}`, { tone: 'ok' });
    },
  },
  {
    id: 'worker.delete', label: 'Delete', icon: 'trash', keys: ['Delete'], scope: 'worker', group: 'Worker', danger: true,
    enabled: (ctx, w) => !!w,
    confirm: (ctx, w) => (ctx.settings.get('general', 'confirm_delete', true)
      ? { title: `Delete ${w.name}?`, message: `${w.name} is stopped and removed from apm. Its log files stay on disk.`, confirmLabel: 'Delete', danger: true }
      : null),
    run: async (ctx, w) => {
      await ctx.api.deleteWorker(w.name);
      ctx.workers.remove([w.name]);
      ctx.toasts.show(`${w.name} deleted`, { tone: 'ok' });
      if (ctx.route.name === 'worker' || ctx.route.name === 'edit') ctx.go('/workers');
    },
  },
  {
    id: 'worker.open', label: 'Open details', icon: 'chevron-right', keys: ['Enter'], scope: 'list', group: 'Worker list',
    enabled: (ctx, w) => !!w,
    run: async (ctx, w) => ctx.go(`/workers/${encodeURIComponent(w.name)}`),
  },
  // ---------------------------------------------------------------- the list
  {
    id: 'list.next', label: 'Next worker', icon: 'chevron-down', keys: ['j', 'ArrowDown'], scope: 'list', group: 'Worker list',
    enabled: () => true, run: async (ctx) => ctx.view.move && ctx.view.move(1),
  },
  {
    id: 'list.prev', label: 'Previous worker', icon: 'chevron-down', keys: ['k', 'ArrowUp'], scope: 'list', group: 'Worker list',
    enabled: () => true, run: async (ctx) => ctx.view.move && ctx.view.move(-1),
  },
  {
    id: 'list.view', label: 'Table / cards', icon: 'cards', keys: ['v'], scope: 'list', group: 'Worker list',
    enabled: () => true,
    run: async (ctx) => ctx.saveSettings({ ui: { view_mode: ctx.settings.get('ui', 'view_mode', 'table') === 'table' ? 'card' : 'table' } }),
  },
  {
    id: 'list.search', label: 'Search', icon: 'search', keys: ['/'], scope: 'global', group: 'General',
    enabled: () => true, run: async (ctx) => ctx.focusSearch(),
  },
  // ---------------------------------------------------------------- everywhere
  {
    id: 'worker.new', label: 'New worker', icon: 'plus', keys: ['n'], scope: 'global', group: 'General',
    enabled: () => true, run: async (ctx) => ctx.go('/new'),
  },
  { id: 'nav.workers', label: 'Go to Workers', icon: 'layers', keys: ['g w'], scope: 'global', group: 'Navigation', enabled: () => true, run: async (ctx) => ctx.go('/workers') },
  { id: 'nav.logs', label: 'Go to Live Logs', icon: 'activity', keys: ['g l'], scope: 'global', group: 'Navigation', enabled: () => true, run: async (ctx) => ctx.go('/logs') },
  { id: 'nav.library', label: 'Go to Log Library', icon: 'library', keys: ['g b'], scope: 'global', group: 'Navigation', enabled: () => true, run: async (ctx) => ctx.go('/library') },
  { id: 'nav.volume', label: 'Go to Log Volume', icon: 'volume', keys: ['g v'], scope: 'global', group: 'Navigation', enabled: () => true, run: async (ctx) => ctx.go('/volume') },
  { id: 'nav.server', label: 'Go to Server Info', icon: 'server', keys: ['g i'], scope: 'global', group: 'Navigation', enabled: () => true, run: async (ctx) => ctx.go('/server') },
  { id: 'nav.settings', label: 'Go to Settings', icon: 'settings', keys: ['g s'], scope: 'global', group: 'Navigation', enabled: () => true, run: async (ctx) => ctx.go('/settings') },
  {
    id: 'ui.theme', label: 'Switch dark / light', icon: 'moon', keys: ['t'], scope: 'global', group: 'General',
    enabled: () => true,
    run: async (ctx) => ctx.saveSettings({ ui: { theme: document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark' } }),
  },
  {
    id: 'ui.notifications', label: 'Notifications', icon: 'bell', keys: ['b'], scope: 'global', group: 'General',
    enabled: () => true, run: async (ctx) => ctx.toggleBell(),
  },
  {
    id: 'ui.help', label: 'Keyboard shortcuts', icon: 'keyboard', keys: ['?'], scope: 'global', group: 'General',
    enabled: () => true, run: async (ctx) => ctx.showHelp(),
  },
  {
    id: 'daemon.save', label: 'Save state', icon: 'save', keys: [], scope: 'global', group: 'Daemon',
    enabled: () => true,
    run: async (ctx) => {
      const r = await ctx.api.saveState();
      if (r && r.saved === false) ctx.toasts.show(`State not saved: ${r.error}`, { tone: 'err' });
      else ctx.toasts.show('State saved: every worker comes back after a daemon restart', { tone: 'ok' });
    },
  },
  {
    id: 'session.lock', label: 'Lock screen', icon: 'lock', keys: ['L'], scope: 'global', group: 'Daemon',
    enabled: () => true, run: async (ctx) => ctx.lockNow(),
  },
  {
    id: 'session.logout', label: 'Log out', icon: 'logout', keys: [], scope: 'global', group: 'Daemon',
    enabled: () => true, run: async (ctx) => ctx.logout(),
  },
  {
    id: 'daemon.shutdown', label: 'Shut down daemon', icon: 'power', keys: [], scope: 'global', group: 'Daemon', danger: true,
    enabled: () => true,
    confirm: (ctx) => (ctx.settings.get('general', 'confirm_shutdown', true)
      ? { title: 'Shut the daemon down?', message: 'Every worker stops and the dashboard goes offline until apm is started again on the server.', confirmLabel: 'Shut down', danger: true }
      : null),
    run: async (ctx) => {
      await ctx.api.shutdown();
      ctx.toasts.show('The daemon is shutting down', { tone: 'warn' });
    },
  },
];

export const BY_ID = new Map(ACTIONS.map((a) => [a.id, a]));

export function action(id) {
  const a = BY_ID.get(id);
  if (!a) throw new Error(`unknown action ${id}`);
  return a;
}

export function labelOf(a, w) {
  return typeof a.label === 'function' ? a.label(w) : a.label;
}

const KEY_NAMES = { Delete: 'Del', ArrowDown: '↓', ArrowUp: '↑', Enter: 'Enter', Escape: 'Esc', ' ': 'Space' };

/** 'g w' -> ['g', 'w'] display chips; 'R' -> 'Shift+R'. */
export function keyChips(spec) {
  return spec.split(' ').map((k) => KEY_NAMES[k] || (k.length === 1 && k !== k.toLowerCase() && /[A-Z]/.test(k) ? `Shift+${k}` : k));
}

export function shortcutText(a) {
  return a.keys && a.keys.length ? keyChips(a.keys[0]).join(' then ') : '';
}

/** Worker actions for a menu (context menu / "more" button). */
export const WORKER_MENU = ['worker.start', 'worker.stop', 'worker.restart', 'worker.reload', 'worker.signal', 'separator',
  'worker.logs', 'worker.edit', 'worker.toggle', 'worker.copy', 'separator', 'worker.delete'];
