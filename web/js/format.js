// Number, size, time formatting for the pages (pure functions).

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];

export function bytes(n, digits = 1) {
  if (n == null || !Number.isFinite(n)) return '–';
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u += 1;
  }
  const d = u === 0 ? 0 : v >= 100 ? 0 : digits;
  return `${n < 0 ? '-' : ''}${v.toFixed(d)} ${UNITS[u]}`;
}

export function percent(n, digits = 1) {
  if (n == null || !Number.isFinite(n)) return '–';
  return `${n.toFixed(n >= 100 ? 0 : digits)}%`;
}

export function count(n) {
  if (n == null || !Number.isFinite(n)) return '–';
  if (n < 1000) return String(n);
  if (n < 1e6) return `${(n / 1e3).toFixed(n < 1e4 ? 1 : 0)}k`;
  return `${(n / 1e6).toFixed(n < 1e7 ? 1 : 0)}M`;
}

export function integer(n) {
  if (n == null || !Number.isFinite(n)) return '–';
  return Math.round(n).toLocaleString('en-US');
}

/** Seconds -> "3d 4h", "2h 5m", "4m 12s", "9s". */
export function duration(sec) {
  if (sec == null || !Number.isFinite(sec) || sec < 0) return '–';
  const s = Math.floor(sec);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${r}s`;
  return `${r}s`;
}

export function ms(v) {
  if (v == null || !Number.isFinite(v)) return '–';
  if (v < 1) return `${v.toFixed(2)} ms`;
  if (v < 10) return `${v.toFixed(1)} ms`;
  if (v < 1000) return `${Math.round(v)} ms`;
  return `${(v / 1000).toFixed(2)} s`;
}

function pad(n, w = 2) {
  return String(n).padStart(w, '0');
}

/** Unix seconds -> "14:02:07.123" (local time). */
export function clock(ts, millis = true) {
  if (ts == null) return '';
  const d = new Date(ts * 1000);
  const base = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return millis ? `${base}.${pad(d.getMilliseconds(), 3)}` : base;
}

/** Unix seconds -> "2026-11-21 14:02:07". */
export function datetime(ts) {
  if (ts == null) return '–';
  const d = new Date(ts * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(ts, false)}`;
}

/** Unix seconds -> "12 s ago", "3 min ago", "2 h ago", or the date. */
export function ago(ts, now = Date.now() / 1000) {
  if (ts == null) return '–';
  const s = Math.max(0, now - ts);
  if (s < 5) return 'just now';
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return datetime(ts);
}

export function hourLabel(ts) {
  const d = new Date(ts * 1000);
  return `${pad(d.getHours())}:00`;
}

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

/** "kill_timeout" -> "Kill timeout". */
export function humanize(key) {
  const s = String(key).replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1);
}
