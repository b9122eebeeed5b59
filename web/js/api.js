// The ONLY module that talks to the daemon: fetch for /api/v1 calls, EventSource for
// the page's one live stream.  It adds the CSRF header to changes, turns error
// bodies into ApiError, and tells the app (events on the Api object) when the
// session is gone (401), locked (423) or the daemon is unreachable.
//
//   const api = new Api();
//   api.addEventListener('unauthorized', ...); api.addEventListener('locked', ...)
//   const workers = await api.workers();
//   const live = api.stream(); live.start({logs: ['web'], tail: 200});

const BASE = '/api/v1';
const MUTATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const STREAM_EVENTS = ['hello', 'snapshot', 'workers', 'removed', 'stats', 'log', 'notify', 'settings', 'resync', 'bye', 'logout', 'locked'];

export class ApiError extends Error {
  constructor(status, payload, fallback = '') {
    const e = (payload && payload.error) || {};
    super(e.message || fallback || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.kind = e.kind || (status === 0 ? 'network' : 'http');
    this.hint = e.hint || '';
    this.detail = e.detail || null;
    this.where = e.where || null;
  }

  get retryAfter() {
    return (this.detail && this.detail.retry_after) || 0;
  }
}

function query(params) {
  if (!params) return '';
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v == null || v === '' || v === false) continue;
    q.set(k, v === true ? '1' : String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

const enc = encodeURIComponent;

export class Api extends EventTarget {
  constructor(base = BASE) {
    super();
    this.base = base;
    this.csrf = '';
  }

  url(path, params) {
    return this.base + path + query(params);
  }

  async request(method, path, { body, params, signal, quiet = false } = {}) {
    const headers = {};
    // The API answers Cache-Control: no-store; no cache mode here, so the responses index.html
    // preloads (auth status, the worker list) are picked up by the first calls.
    const init = { method, headers, credentials: 'same-origin', signal };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (MUTATING.has(method) && this.csrf) headers['X-CSRF-Token'] = this.csrf;
    let res;
    try {
      res = await fetch(this.url(path, params), init);
    } catch (err) {
      if (err && err.name === 'AbortError') throw err;
      if (!quiet) this.dispatchEvent(new CustomEvent('network', { detail: { path } }));
      throw new ApiError(0, null, 'The daemon is not answering');
    }
    let data = null;
    const type = res.headers.get('Content-Type') || '';
    if (type.includes('json')) {
      try {
        data = await res.json();
      } catch {
        data = null;
      }
    }
    if (data && data.session && data.session.csrf) this.csrf = data.session.csrf;
    if (!res.ok) {
      const err = new ApiError(res.status, data, res.statusText);
      if (!quiet && !path.startsWith('/auth/')) {
        if (res.status === 401) this.dispatchEvent(new CustomEvent('unauthorized', { detail: err }));
        if (res.status === 423) this.dispatchEvent(new CustomEvent('locked', { detail: err }));
      }
      throw err;
    }
    return data;
  }

  get(path, params, opts = {}) {
    return this.request('GET', path, { ...opts, params });
  }

  post(path, body = {}, opts = {}) {
    return this.request('POST', path, { ...opts, body });
  }

  patch(path, body, opts = {}) {
    return this.request('PATCH', path, { ...opts, body });
  }

  put(path, body, opts = {}) {
    return this.request('PUT', path, { ...opts, body });
  }

  del(path, opts = {}) {
    return this.request('DELETE', path, opts);
  }

  // ------------------------------------------------------------------ auth
  authStatus() {
    return this.get('/auth/status', null, { quiet: true });
  }
  setup(setupToken, password) {
    return this.post('/auth/setup', { setup_token: setupToken, password });
  }
  login(password) {
    return this.post('/auth/login', { password });
  }
  logout() {
    return this.post('/auth/logout');
  }
  lock() {
    return this.post('/auth/lock');
  }
  unlock(secret) {
    return this.post('/auth/unlock', secret);
  }
  activity() {
    return this.post('/auth/activity', {}, { quiet: true });
  }
  changePassword(current, next) {
    return this.post('/auth/password', { current, new: next });
  }
  setPin(pin, password) {
    return this.put('/auth/pin', { pin, password });
  }
  removePin() {
    return this.del('/auth/pin');
  }
  tokens() {
    return this.get('/auth/tokens');
  }
  createToken(name) {
    return this.post('/auth/tokens', { name });
  }
  revokeToken(id) {
    return this.del(`/auth/tokens/${enc(id)}`);
  }

  // ------------------------------------------------------------------ workers
  workers(opts = {}) {
    return this.get('/workers', null, opts);
  }
  worker(name) {
    return this.get(`/workers/${enc(name)}`);
  }
  createWorker(config) {
    return this.post('/workers', { config });
  }
  updateWorker(name, config, restart = true) {
    return this.patch(`/workers/${enc(name)}`, { config, restart });
  }
  deleteWorker(name) {
    return this.del(`/workers/${enc(name)}`);
  }
  workerAction(name, verb) {
    return this.post(`/workers/${enc(name)}/${verb}`);
  }
  signalWorker(name, signal) {
    return this.post(`/workers/${enc(name)}/signal`, { signal });
  }
  renameWorker(name, next) {
    return this.post(`/workers/${enc(name)}/rename`, { new: next });
  }
  copyWorker(name, next) {
    return this.post(`/workers/${enc(name)}/copy`, { new: next });
  }
  workerEnv(name, instance) {
    return this.get(`/workers/${enc(name)}/env`, { instance });
  }
  metrics(name, range = '1h') {
    return this.get(`/workers/${enc(name)}/metrics`, { range });
  }
  /** Restart history: `{worker, events: [{time, instance, kind, pid, exit_code, signal, reason, uptime}]}`,
   *  newest first.  Resolves to null while the daemon does not offer it (no `events` in the answer). */
  async restartHistory(name, limit = 100) {
    const data = await this.get(`/workers/${enc(name)}/history`, { limit });
    return data && Array.isArray(data.events) ? data : null;
  }
  workerSchema() {
    return this.get('/schema/worker');
  }
  stopAll() {
    return this.post('/workers/stopall');
  }

  // ------------------------------------------------------------------ logs
  tail(name, lines, extra = {}) {
    return this.get(`/workers/${enc(name)}/logs`, { lines, ...extra });
  }
  clearLogs(name) {
    return this.del(`/workers/${enc(name)}/logs`);
  }
  searchLogs(params) {
    return this.get('/logs/search', params);
  }
  library() {
    return this.get('/logs');
  }
  volume(params) {
    return this.get('/logs/volume', params);
  }
  alerts() {
    return this.get('/logs/alerts');
  }
  /** Replace every log alert (the daemon validates all first: a bad one changes nothing). */
  setAlerts(alerts) {
    return this.put('/logs/alerts', { alerts });
  }
  /** A plain link target for the browser to download (the cookie authenticates it). */
  downloadUrl(name, strip = true) {
    return this.url(`/workers/${enc(name)}/logs/download`, { strip });
  }

  // ------------------------------------------------------------------ system
  health() {
    return this.get('/health', null, { quiet: true });
  }
  /** Browser -> server round trip in ms (the smallest of `n` pings). */
  async ping(n = 3) {
    let best = Infinity;
    for (let i = 0; i < n; i += 1) {
      const t0 = performance.now();
      await this.get('/ping', null, { quiet: true });
      best = Math.min(best, performance.now() - t0);
    }
    return best;
  }
  systemInfo() {
    return this.get('/system/info');
  }
  systemStats() {
    return this.get('/system/stats');
  }
  latency() {
    return this.get('/system/latency');
  }
  notifications(after = 0) {
    return this.get('/notifications', { after });
  }
  saveState() {
    return this.post('/system/save');
  }
  shutdown() {
    return this.post('/system/shutdown');
  }

  // ------------------------------------------------------------------ settings
  settings() {
    return this.get('/settings');
  }
  settingsSchema() {
    return this.get('/settings/schema');
  }
  updateSettings(changes) {
    return this.patch('/settings', changes);
  }

  stream() {
    return new LiveStream(this);
  }
}

/**
 * The page's one live connection (Server-Sent Events).  Re-dispatches every
 * server event as a CustomEvent of the same name; `state` events say
 * connecting / open / down (daemon gone, retrying with backoff) / ended
 * (logout or lock: the app decides).  While down it probes /health with
 * backoff and dispatches `reachable` once the daemon answers again.
 */
export class LiveStream extends EventTarget {
  constructor(api) {
    super();
    this.api = api;
    this.params = { workers: true, stats: true, notify: true, logs: [], tail: 0 };
    this.state = 'idle';
    this.es = null;
    this.attempt = 0;
    this.timer = 0;
    this.wanted = false;
    this.maxDelay = 10000;
    this.nextTry = 0;
    this.serverOffset = 0; // server clock - browser clock, seconds
    this.openedUrl = '';
  }

  url() {
    const p = this.params;
    const logs = [...new Set(p.logs)].sort();
    return this.api.url('/stream', {
      workers: p.workers ? '1' : '0',
      stats: p.stats ? '1' : '0',
      notify: p.notify ? '1' : '0',
      logs: logs.join(','),
      tail: logs.length && p.tail ? p.tail : null,
    });
  }

  /** Start (or re-aim) the stream; reopens only when the subscription changed. */
  start(params = {}) {
    this.wanted = true;
    this.params = { ...this.params, ...params };
    if (this.state === 'down') return; // the reconnect picks the new params up
    if (this.es && this.openedUrl === this.url()) return;
    this.open();
  }

  open() {
    this.closeSource();
    clearTimeout(this.timer);
    this.openedUrl = this.url();
    const es = new EventSource(this.openedUrl);
    this.es = es;
    this.setState('connecting');
    for (const name of STREAM_EVENTS) {
      es.addEventListener(name, (msg) => this.onMessage(es, name, msg));
    }
    es.onerror = () => {
      if (this.es === es) this.failed();
    };
  }

  onMessage(es, name, msg) {
    if (this.es !== es) return;
    let data = null;
    try {
      data = JSON.parse(msg.data);
    } catch {
      return;
    }
    if (name === 'hello') {
      this.attempt = 0;
      this.serverOffset = (data.server_time || Date.now() / 1000) - Date.now() / 1000;
      this.setState('open');
    }
    if (name === 'bye' || name === 'logout' || name === 'locked') {
      this.closeSource();
      if (name === 'bye') {
        this.setState('down');
        this.schedule();
      } else {
        this.setState('ended');
      }
    }
    this.dispatchEvent(new CustomEvent(name, { detail: data }));
  }

  failed() {
    this.closeSource();
    if (!this.wanted) return;
    this.setState('down');
    this.schedule();
  }

  schedule() {
    clearTimeout(this.timer);
    const delay = Math.min(this.maxDelay, 400 * 2 ** this.attempt);
    this.attempt += 1;
    this.nextTry = Date.now() + delay;
    this.timer = setTimeout(() => this.probe(), delay);
    this.dispatchEvent(new CustomEvent('retry', { detail: { at: this.nextTry, attempt: this.attempt } }));
  }

  /** Try now (the "Reconnect" button). */
  retryNow() {
    if (this.state !== 'down') return;
    clearTimeout(this.timer);
    this.probe();
  }

  async probe() {
    if (!this.wanted) return;
    try {
      await this.api.health();
    } catch {
      this.schedule();
      return;
    }
    this.dispatchEvent(new CustomEvent('reachable'));
  }

  /** After `reachable` (and the app found the session fine): open again. */
  resume() {
    if (this.wanted) this.open();
  }

  stop() {
    this.wanted = false;
    clearTimeout(this.timer);
    this.closeSource();
    this.setState('idle');
  }

  closeSource() {
    if (this.es) {
      this.es.close();
      this.es = null;
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: state }));
  }

  /** Server "now" in unix seconds (uptimes tick with the server's clock). */
  now() {
    return Date.now() / 1000 + this.serverOffset;
  }
}
