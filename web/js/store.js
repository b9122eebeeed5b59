// Models: plain data + EventTarget.  The live stream feeds them deltas; views listen.
//
//   workers  'reset' (snapshot), 'change' {names, removed}, 'stats' {names}
//   settings 'change' {values}
//   notices  'change'

const SPARK_POINTS = 60;
const UI_CACHE = 'apm.ui';

export const STATUS_TONE = {
  running: 'ok',
  partial: 'warn',
  starting: 'pending',
  waiting: 'pending',
  backoff: 'pending',
  stopping: 'pending',
  stopped: 'muted',
  exited: 'muted',
  errored: 'err',
  failed: 'err',
  disabled: 'muted',
};

export function tone(status) {
  return STATUS_TONE[status] || 'muted';
}

export const RUNNING_STATES = new Set(['running', 'partial', 'starting', 'waiting', 'backoff', 'stopping']);

export class WorkersModel extends EventTarget {
  constructor() {
    super();
    this.map = new Map();
    this.stats = new Map(); // name -> {cpu, memory, instances: [{index, cpu, memory}]}
    this.spark = new Map(); // name -> [cpu, ...] (one point per stats tick)
    this.host = null;
    this.loaded = false;
    this.order = null; // cached sorted names (invalidated on add/remove)
  }

  snapshot(data) {
    if (Array.isArray(data.workers)) {
      const names = new Set();
      for (const w of data.workers) {
        this.map.set(w.name, w);
        names.add(w.name);
      }
      for (const name of [...this.map.keys()]) {
        if (!names.has(name)) this.forget(name);
      }
    }
    if (data.stats) {
      this.stats.clear();
      for (const [name, row] of Object.entries(data.stats.workers || {})) {
        if (row && row.cpu != null) this.stats.set(name, row);
      }
      if (data.stats.host && Object.keys(data.stats.host).length) this.host = data.stats.host;
    }
    this.order = null;
    this.loaded = true;
    this.dispatchEvent(new CustomEvent('reset'));
  }

  upsert(list) {
    const names = [];
    for (const w of list) {
      const known = this.map.get(w.name);
      // An action's answer can arrive after the stream already delivered a later state:
      // `revision` (the daemon's event count when the status was taken) keeps the newer one.
      if (known && known.revision != null && w.revision != null && w.revision < known.revision) continue;
      if (!known) this.order = null;
      this.map.set(w.name, w);
      names.push(w.name);
    }
    if (names.length) this.dispatchEvent(new CustomEvent('change', { detail: { names, removed: false } }));
  }

  remove(names) {
    for (const name of names) this.forget(name);
    this.order = null;
    if (names.length) this.dispatchEvent(new CustomEvent('change', { detail: { names, removed: true } }));
  }

  forget(name) {
    this.map.delete(name);
    this.stats.delete(name);
    this.spark.delete(name);
  }

  applyStats(payload) {
    const changed = [];
    for (const [name, row] of Object.entries(payload.workers || {})) {
      if (!row || row.cpu == null) this.stats.delete(name);
      else this.stats.set(name, row);
      changed.push(name);
    }
    if (payload.host && Object.keys(payload.host).length) this.host = payload.host;
    for (const [name, w] of this.map) {
      let ring = this.spark.get(name);
      const st = this.stats.get(name);
      const value = st ? st.cpu : null;
      if (!ring) {
        if (value == null && !RUNNING_STATES.has(w.status)) continue;
        ring = [];
        this.spark.set(name, ring);
      }
      ring.push(value);
      if (ring.length > SPARK_POINTS) ring.shift();
    }
    this.dispatchEvent(new CustomEvent('stats', { detail: { names: changed } }));
  }

  get(name) {
    return this.map.get(name) || null;
  }

  get size() {
    return this.map.size;
  }

  /** Every worker, sorted by name (cached). */
  all() {
    if (!this.order) this.order = [...this.map.keys()].sort((a, b) => a.localeCompare(b));
    return this.order.map((n) => this.map.get(n));
  }

  namespaces() {
    const out = new Map();
    for (const w of this.map.values()) out.set(w.namespace || 'default', (out.get(w.namespace || 'default') || 0) + 1);
    return new Map([...out.entries()].sort((a, b) => a[0].localeCompare(b[0])));
  }

  counts() {
    const c = { total: this.map.size, running: 0, stopped: 0, errored: 0, other: 0 };
    for (const w of this.map.values()) {
      if (w.status === 'running') c.running += 1;
      else if (w.status === 'errored') c.errored += 1;
      else if (w.status === 'stopped' || w.status === 'exited' || w.status === 'disabled') c.stopped += 1;
      else c.other += 1;
    }
    return c;
  }

  // ---------------------------------------------------------------- derived values
  cpu(w) {
    const st = this.stats.get(w.name);
    if (st) return st.cpu;
    let sum = null;
    for (const i of w.instances || []) if (i.cpu != null) sum = (sum || 0) + i.cpu;
    return sum;
  }

  memory(w) {
    const st = this.stats.get(w.name);
    if (st) return st.memory;
    let sum = null;
    for (const i of w.instances || []) if (i.memory != null) sum = (sum || 0) + i.memory;
    return sum;
  }

  instanceStats(w, index) {
    const st = this.stats.get(w.name);
    const row = st && st.instances ? st.instances.find((i) => i.index === index) : null;
    if (row) return row;
    const inst = (w.instances || []).find((i) => i.index === index);
    return inst ? { cpu: inst.cpu, memory: inst.memory } : { cpu: null, memory: null };
  }

  /** Seconds since the oldest running instance started, or null. */
  uptime(w, now) {
    let first = null;
    for (const i of w.instances || []) {
      if (i.started_at != null && (first == null || i.started_at < first)) first = i.started_at;
    }
    return first == null ? null : Math.max(0, now - first);
  }
}

export function pids(w) {
  return (w.instances || []).map((i) => i.pid).filter((p) => p != null);
}

export function restartsTotal(w) {
  const r = w.restarts || {};
  return (r.clean || 0) + (r.error || 0);
}

/** GUI settings (Settings → General / UI / Security); UI values cached for the first paint. */
export class SettingsModel extends EventTarget {
  constructor() {
    super();
    this.values = { general: {}, ui: readCachedUi(), security: {} };
    this.schema = null;
  }

  get(section, key, fallback = null) {
    const s = this.values[section] || {};
    return s[key] === undefined ? fallback : s[key];
  }

  /** New values from this page (a fetch or its own save).  `remote` marks a change made
   *  elsewhere (another tab, browser or API client) that reached us on the live stream. */
  set(values, remote = false) {
    this.values = values;
    try {
      localStorage.setItem(UI_CACHE, JSON.stringify(values.ui || {}));
    } catch {
      /* storage may be disabled */
    }
    this.dispatchEvent(new CustomEvent('change', { detail: { values, remote } }));
  }

  /** The stream's `settings` event (the masked object GET /settings returns), pushed on every
   *  change.  The echo of this page's own save carries what it already has and changes nothing.
   *  Returns whether anything changed. */
  receive(values) {
    if (!values || typeof values !== 'object' || Array.isArray(values)) return false;
    const next = { general: {}, ui: {}, security: {}, ...values };
    if (stableJson(next) === stableJson(this.values)) return false;
    this.set(next, true);
    return true;
  }
}

/** JSON with object keys sorted, so equal values compare equal whatever their key order. */
export function stableJson(v) {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stableJson(v[k])}`).join(',')}}`;
  return JSON.stringify(v === undefined ? null : v);
}

function readCachedUi() {
  try {
    return JSON.parse(localStorage.getItem(UI_CACHE) || '{}') || {};
  } catch {
    return {};
  }
}

/** The bell: recent notifications, newest first, with an unread count. */
export class NoticesModel extends EventTarget {
  constructor(limit = 200) {
    super();
    this.items = [];
    this.limit = limit;
    this.seen = 0;
    try {
      this.seen = Number(localStorage.getItem('apm.seen') || 0) || 0;
    } catch {
      this.seen = 0;
    }
  }

  load(list) {
    const byId = new Map(this.items.map((i) => [i.id, i]));
    for (const item of list) byId.set(item.id, item);
    this.items = [...byId.values()].sort((a, b) => b.id - a.id).slice(0, this.limit);
    if (this.items.length && this.seen > this.items[0].id) this.seen = 0; // the daemon restarted: ids start over
    this.dispatchEvent(new CustomEvent('change'));
  }

  add(item) {
    if (this.items.length && item.id <= this.items[0].id && this.items.some((i) => i.id === item.id)) return;
    this.items.unshift(item);
    if (this.items.length > this.limit) this.items.pop();
    this.dispatchEvent(new CustomEvent('change', { detail: { item } }));
  }

  get unread() {
    let n = 0;
    for (const i of this.items) if (i.id > this.seen) n += 1;
    return n;
  }

  markRead() {
    this.seen = this.items.length ? this.items[0].id : this.seen;
    try {
      localStorage.setItem('apm.seen', String(this.seen));
    } catch {
      /* ignore */
    }
    this.dispatchEvent(new CustomEvent('change'));
  }

  forWorker(name) {
    return this.items.filter((i) => i.worker === name);
  }
}
