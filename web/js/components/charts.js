// Canvas charts: row sparklines, the detail page's line charts, Log Volume's stacked bars.
import { h } from '../dom.js';
import { colors } from '../theme.js';

function setupCanvas(canvas, w, h) {
  const dpr = window.devicePixelRatio || 1;
  const W = Math.max(1, Math.round(w * dpr));
  const H = Math.max(1, Math.round(h * dpr));
  if (canvas.width !== W || canvas.height !== H) {
    canvas.width = W;
    canvas.height = H;
  }
  const ctx = canvas.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  return ctx;
}

function withAlpha(color, alpha) {
  const c = color.trim();
  if (c.startsWith('#') && c.length === 7) {
    const n = parseInt(c.slice(1), 16);
    return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
  }
  return c;
}

/** Draw a CPU sparkline: `values` (null = not running), fixed pixel size. */
export function drawSparkline(canvas, values, w, hgt, color = null) {
  const ctx = setupCanvas(canvas, w, hgt);
  const c = colors();
  const stroke = color || c.accent;
  const pts = values || [];
  const n = 60;
  let peak = 0;
  for (const v of pts) if (v != null && v > peak) peak = v;
  const max = Math.max(5, peak * 1.15);
  const step = w / (n - 1);
  const x0 = w - (pts.length - 1) * step;
  ctx.lineWidth = 1.5;
  ctx.lineJoin = 'round';
  ctx.strokeStyle = withAlpha(c.faint || '#888', 0.35);
  ctx.beginPath();
  ctx.moveTo(0, hgt - 0.5);
  ctx.lineTo(w, hgt - 0.5);
  ctx.stroke();
  if (pts.length < 2) return;
  const grad = ctx.createLinearGradient(0, 0, 0, hgt);
  grad.addColorStop(0, withAlpha(stroke, 0.35));
  grad.addColorStop(1, withAlpha(stroke, 0));
  let seg = [];
  const flush = () => {
    if (seg.length > 1) {
      ctx.beginPath();
      ctx.moveTo(seg[0][0], hgt);
      for (const [x, y] of seg) ctx.lineTo(x, y);
      ctx.lineTo(seg[seg.length - 1][0], hgt);
      ctx.closePath();
      ctx.fillStyle = grad;
      ctx.fill();
      ctx.beginPath();
      seg.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      ctx.strokeStyle = stroke;
      ctx.stroke();
    }
    seg = [];
  };
  pts.forEach((v, i) => {
    if (v == null) { flush(); return; }
    seg.push([x0 + i * step, hgt - 1.5 - (v / max) * (hgt - 3)]);
  });
  flush();
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/**
 * A time-series line chart that redraws on resize and shows a hover tooltip.
 *   const chart = new LineChart({label: 'CPU', format: v => v + '%', minMax: 10});
 *   chart.setData(times, values); parent.append(chart.el);
 */
export class LineChart {
  constructor({ label, format, minMax = 1, color = null, timeFormat }) {
    this.label = label;
    this.format = format;
    this.minMax = minMax;
    this.color = color;
    this.timeFormat = timeFormat;
    this.t = [];
    this.v = [];
    this.hover = -1;
    this.canvas = h('canvas', { class: 'chart-canvas', role: 'img', 'aria-label': label });
    this.tip = h('div', { class: 'chart-tip', hidden: true });
    this.el = h('div', { class: 'chart' }, this.canvas, this.tip);
    this.ro = new ResizeObserver(() => this.draw());
    this.ro.observe(this.el);
    this.canvas.addEventListener('pointermove', (ev) => this.onMove(ev));
    this.canvas.addEventListener('pointerleave', () => { this.hover = -1; this.tip.hidden = true; this.draw(); });
  }

  setData(t, v) {
    this.t = t;
    this.v = v;
    this.draw();
  }

  push(t, value, keep = 720) {
    this.t.push(t);
    this.v.push(value);
    if (this.t.length > keep) { this.t.shift(); this.v.shift(); }
    this.draw();
  }

  destroy() {
    this.ro.disconnect();
  }

  geometry() {
    const w = this.el.clientWidth;
    const hgt = this.el.clientHeight;
    return { w, h: hgt, left: 52, right: 12, top: 10, bottom: 24 };
  }

  draw() {
    const g = this.geometry();
    if (g.w < 20 || g.h < 20) return;
    const ctx = setupCanvas(this.canvas, g.w, g.h);
    const c = colors();
    const stroke = this.color || c.accent;
    const pw = g.w - g.left - g.right;
    const ph = g.h - g.top - g.bottom;
    let peak = 0;
    for (const v of this.v) if (v != null && v > peak) peak = v;
    const max = niceMax(Math.max(this.minMax, peak * 1.1));
    this.max = max;
    ctx.font = `11px ${c.sans || 'sans-serif'}`;
    ctx.textBaseline = 'middle';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i += 1) {
      const y = Math.round(g.top + ph - (ph * i) / 4) + 0.5;
      ctx.strokeStyle = c.grid;
      ctx.beginPath();
      ctx.moveTo(g.left, y);
      ctx.lineTo(g.w - g.right, y);
      ctx.stroke();
      ctx.fillStyle = c.faint;
      ctx.textAlign = 'right';
      ctx.fillText(this.format((max * i) / 4), g.left - 8, y);
    }
    const n = this.t.length;
    if (n === 0) {
      ctx.fillStyle = c.faint;
      ctx.textAlign = 'center';
      ctx.fillText('No samples yet', g.left + pw / 2, g.top + ph / 2);
      return;
    }
    const t0 = this.t[0];
    const t1 = this.t[n - 1];
    const span = Math.max(1, t1 - t0);
    const xOf = (t) => g.left + ((t - t0) / span) * pw;
    const yOf = (v) => g.top + ph - (v / max) * ph;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    ctx.fillStyle = c.faint;
    const ticks = Math.max(2, Math.min(6, Math.floor(pw / 110)));
    let last = '';
    for (let i = 0; i <= ticks; i += 1) {
      const t = t0 + (span * i) / ticks;
      const text = this.timeFormat(t, false, span);
      if (text === last) continue; // a short span: several ticks in one second / minute
      last = text;
      ctx.fillText(text, Math.min(g.w - 30, Math.max(g.left + 20, xOf(t))), g.h - g.bottom + 7);
    }
    const grad = ctx.createLinearGradient(0, g.top, 0, g.top + ph);
    grad.addColorStop(0, withAlpha(stroke, 0.28));
    grad.addColorStop(1, withAlpha(stroke, 0.02));
    let seg = [];
    const flush = () => {
      if (seg.length > 0) {
        ctx.beginPath();
        ctx.moveTo(seg[0][0], g.top + ph);
        for (const [x, y] of seg) ctx.lineTo(x, y);
        ctx.lineTo(seg[seg.length - 1][0], g.top + ph);
        ctx.closePath();
        ctx.fillStyle = grad;
        ctx.fill();
        ctx.beginPath();
        seg.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
        if (seg.length === 1) ctx.arc(seg[0][0], seg[0][1], 1.5, 0, Math.PI * 2);
        ctx.strokeStyle = stroke;
        ctx.lineWidth = 1.75;
        ctx.stroke();
      }
      seg = [];
    };
    for (let i = 0; i < n; i += 1) {
      const v = this.v[i];
      if (v == null) flush();
      else seg.push([xOf(this.t[i]), yOf(v)]);
    }
    flush();
    if (this.hover >= 0 && this.hover < n) {
      const x = xOf(this.t[this.hover]);
      ctx.strokeStyle = c.faint;
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.moveTo(x, g.top);
      ctx.lineTo(x, g.top + ph);
      ctx.stroke();
      const v = this.v[this.hover];
      if (v != null) {
        ctx.fillStyle = stroke;
        ctx.beginPath();
        ctx.arc(x, yOf(v), 3.5, 0, Math.PI * 2);
        ctx.fill();
      }
    }
  }

  onMove(ev) {
    const n = this.t.length;
    if (!n) return;
    const g = this.geometry();
    const r = this.canvas.getBoundingClientRect();
    const x = ev.clientX - r.left;
    const t0 = this.t[0];
    const span = Math.max(1, this.t[n - 1] - t0);
    const t = t0 + ((x - g.left) / (g.w - g.left - g.right)) * span;
    let best = 0;
    for (let i = 1; i < n; i += 1) if (Math.abs(this.t[i] - t) < Math.abs(this.t[best] - t)) best = i;
    this.hover = best;
    const v = this.v[best];
    this.tip.hidden = false;
    this.tip.textContent = `${this.timeFormat(this.t[best], true)}  ·  ${v == null ? 'not running' : this.format(v)}`;
    const left = Math.min(Math.max(0, x + 12), g.w - this.tip.offsetWidth - 4);
    this.tip.style.left = `${left}px`;
    this.draw();
  }
}

/**
 * Stacked bars: buckets (x) of series values.
 *   chart.setData(buckets: [label...], series: [{name, color, values: [n per bucket]}])
 */
export class BarChart {
  constructor({ label, format, bucketLabel }) {
    this.label = label;
    this.format = format;
    this.bucketLabel = bucketLabel;
    this.buckets = [];
    this.series = [];
    this.hover = -1;
    this.canvas = h('canvas', { class: 'chart-canvas', role: 'img', 'aria-label': label });
    this.tip = h('div', { class: 'chart-tip chart-tip-multi', hidden: true });
    this.el = h('div', { class: 'chart chart-tall' }, this.canvas, this.tip);
    this.ro = new ResizeObserver(() => this.draw());
    this.ro.observe(this.el);
    this.canvas.addEventListener('pointermove', (ev) => this.onMove(ev));
    this.canvas.addEventListener('pointerleave', () => { this.hover = -1; this.tip.hidden = true; this.draw(); });
  }

  setData(buckets, series) {
    this.buckets = buckets;
    this.series = series;
    this.draw();
  }

  destroy() {
    this.ro.disconnect();
  }

  geometry() {
    return { w: this.el.clientWidth, h: this.el.clientHeight, left: 56, right: 12, top: 12, bottom: 26 };
  }

  draw() {
    const g = this.geometry();
    if (g.w < 20 || g.h < 20) return;
    const ctx = setupCanvas(this.canvas, g.w, g.h);
    const c = colors();
    const pw = g.w - g.left - g.right;
    const ph = g.h - g.top - g.bottom;
    const n = this.buckets.length;
    const totals = this.buckets.map((_, i) => this.series.reduce((s, se) => s + (se.values[i] || 0), 0));
    const max = niceMax(Math.max(1, ...totals));
    ctx.font = `11px ${c.sans || 'sans-serif'}`;
    ctx.textBaseline = 'middle';
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i += 1) {
      const y = Math.round(g.top + ph - (ph * i) / 4) + 0.5;
      ctx.strokeStyle = c.grid;
      ctx.beginPath();
      ctx.moveTo(g.left, y);
      ctx.lineTo(g.w - g.right, y);
      ctx.stroke();
      ctx.fillStyle = c.faint;
      ctx.textAlign = 'right';
      ctx.fillText(this.format((max * i) / 4), g.left - 8, y);
    }
    if (!n) return;
    const slot = pw / n;
    const bw = Math.max(2, Math.min(28, slot * 0.72));
    const every = Math.max(1, Math.ceil(48 / slot));
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let i = 0; i < n; i += 1) {
      const x = g.left + slot * i + (slot - bw) / 2;
      let y = g.top + ph;
      if (i === this.hover) {
        ctx.fillStyle = withAlpha(c.faint, 0.12);
        ctx.fillRect(g.left + slot * i, g.top, slot, ph);
      }
      for (const se of this.series) {
        const v = se.values[i] || 0;
        if (!v) continue;
        const bh = (v / max) * ph;
        ctx.fillStyle = se.color;
        ctx.fillRect(x, y - bh, bw, Math.max(1, bh - 1));
        y -= bh;
      }
      if (i % every === 0) {
        ctx.fillStyle = c.faint;
        ctx.fillText(this.bucketLabel(this.buckets[i]), x + bw / 2, g.h - g.bottom + 8);
      }
    }
  }

  onMove(ev) {
    const n = this.buckets.length;
    if (!n) return;
    const g = this.geometry();
    const r = this.canvas.getBoundingClientRect();
    const x = ev.clientX - r.left;
    const i = Math.floor((x - g.left) / ((g.w - g.left - g.right) / n));
    if (i < 0 || i >= n) { this.hover = -1; this.tip.hidden = true; this.draw(); return; }
    this.hover = i;
    const rows = this.series.filter((se) => se.values[i]).sort((a, b) => b.values[i] - a.values[i]).slice(0, 8);
    const total = this.series.reduce((s, se) => s + (se.values[i] || 0), 0);
    this.tip.replaceChildren(
      h('div', { class: 'tip-head', text: `${this.bucketLabel(this.buckets[i], true)} · ${this.format(total)} lines` }),
      ...rows.map((se) => h('div', { class: 'tip-row' },
        h('span', { class: 'swatch', style: { background: se.color } }),
        h('span', { class: 'tip-name', text: se.name }),
        h('span', { class: 'tip-val', text: this.format(se.values[i]) }))));
    this.tip.hidden = false;
    const left = Math.min(Math.max(0, x + 14), g.w - this.tip.offsetWidth - 4);
    this.tip.style.left = `${left}px`;
    this.draw();
  }
}
