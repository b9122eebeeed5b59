// The Workers card view: one card per worker with a CPU graph, live numbers and the
// main actions.  Cards render incrementally (first screenful at once, the rest in
// chunks per frame) and off-screen cards skip layout (content-visibility: auto).
import { h, setText, toggle } from '../dom.js';
import { icon } from '../icons.js';
import * as fmt from '../format.js';
import { restartsTotal, tone } from '../store.js';
import { actionButton, setStatus, statusPill } from './bits.js';
import { drawSparkline } from './charts.js';
import { showsStart } from '../actions.js';

const FIRST = 40;
const CHUNK = 80;
const SPARK_H = 44;

export class WorkerCards {
  constructor(ctx, { model }) {
    this.ctx = ctx;
    this.model = model;
    this.cards = new Map();
    this.items = [];
    this.selected = null;
    this.job = 0;
    this.sparkW = 0;
    this.el = h('div', { class: 'wcards', role: 'list', 'aria-label': 'Workers' });
    this.el.addEventListener('contextmenu', (ev) => {
      const card = ev.target.closest('[data-name]');
      if (!card) return;
      ev.preventDefault();
      this.select(card.dataset.name);
      ctx.workerMenu(model.get(card.dataset.name), { x: ev.clientX, y: ev.clientY });
    });
    this.ro = new ResizeObserver(() => {
      this.sparkW = 0;
      this.refreshStats();
    });
    this.ro.observe(this.el);
    this.visible = new Set();
    this.io = new IntersectionObserver((entries) => {
      const now = this.ctx.now();
      for (const e of entries) {
        const name = e.target.dataset.name;
        if (e.isIntersecting) {
          this.visible.add(name);
          const card = this.cards.get(name);
          if (card) card.live(now);
        } else {
          this.visible.delete(name);
        }
      }
    }, { rootMargin: '200px 0px' });
  }

  destroy() {
    cancelAnimationFrame(this.job);
    this.ro.disconnect();
    this.io.disconnect();
  }

  setItems(workers) {
    cancelAnimationFrame(this.job);
    this.items = workers;
    const now = this.ctx.now();
    const nodes = [];
    const first = workers.slice(0, FIRST);
    for (const w of first) nodes.push(this.card(w, now).el);
    this.el.replaceChildren(...nodes);
    let at = FIRST;
    const step = () => {
      if (at >= workers.length || this.items !== workers) return;
      const frag = document.createDocumentFragment();
      const t = this.ctx.now();
      for (const w of workers.slice(at, at + CHUNK)) frag.append(this.card(w, t).el);
      at += CHUNK;
      this.el.append(frag);
      this.job = requestAnimationFrame(step);
    };
    this.job = requestAnimationFrame(step);
  }

  card(w, now) {
    let card = this.cards.get(w.name);
    if (!card) {
      card = new WorkerCard(this, w);
      this.cards.set(w.name, card);
      this.io.observe(card.el);
    }
    card.update(w, now, false);
    return card;
  }

  refresh(names) {
    const now = this.ctx.now();
    for (const name of names) {
      const card = this.cards.get(name);
      const w = this.model.get(name);
      if (card && w) card.update(w, now, true);
    }
  }

  refreshStats() {
    const now = this.ctx.now();
    for (const name of this.visible) {
      const card = this.cards.get(name);
      if (card && card.el.isConnected) card.live(now);
    }
  }

  width() {
    if (!this.sparkW) {
      const any = this.el.querySelector('.card-spark');
      this.sparkW = any ? Math.round(any.getBoundingClientRect().width) : 0;
    }
    return this.sparkW || 240;
  }

  select(name) {
    const old = this.cards.get(this.selected);
    if (old) toggle(old.el, 'selected', false);
    this.selected = name;
    const card = this.cards.get(name);
    if (card) toggle(card.el, 'selected', true);
    this.ctx.selectionChanged();
  }

  move(delta) {
    if (!this.items.length) return;
    const names = this.items.map((w) => w.name);
    let idx = names.indexOf(this.selected);
    idx = idx < 0 ? 0 : Math.max(0, Math.min(names.length - 1, idx + delta));
    this.select(names[idx]);
    const card = this.cards.get(names[idx]);
    if (card) card.el.scrollIntoView({ block: 'nearest' });
  }
}

class WorkerCard {
  constructor(grid, w) {
    const ctx = grid.ctx;
    this.grid = grid;
    this.name = w.name;
    this.data = null;
    const getW = () => grid.model.get(this.name);
    this.pill = statusPill(w.status);
    this.ns = h('span', { class: 'chip' });
    this.spark = h('canvas', { class: 'card-spark', 'aria-hidden': 'true' });
    const metric = (label) => {
      const v = h('span', { class: 'metric-value' });
      return [h('div', { class: 'metric' }, h('span', { class: 'metric-label', text: label }), v), v];
    };
    const [mCpu, vCpu] = metric('CPU');
    const [mMem, vMem] = metric('RAM');
    const [mUp, vUp] = metric('Uptime');
    const [mRs, vRs] = metric('Restarts');
    this.v = { cpu: vCpu, mem: vMem, up: vUp, rs: vRs };
    this.inst = h('div', { class: 'card-instances', 'aria-label': 'Instances' });
    this.startBtn = actionButton(ctx, 'worker.start', getW, { variant: 'full', cls: 'btn-sm' });
    this.stopBtn = actionButton(ctx, 'worker.stop', getW, { variant: 'full', cls: 'btn-sm' });
    this.buttons = [this.startBtn, this.stopBtn,
      actionButton(ctx, 'worker.restart', getW),
      actionButton(ctx, 'worker.logs', getW),
      actionButton(ctx, 'worker.edit', getW)];
    const more = h('button', {
      type: 'button', class: 'icon-btn', 'aria-label': `More actions for ${this.name}`, title: 'More actions', 'aria-haspopup': 'menu',
      onclick: (ev) => { ev.stopPropagation(); ctx.workerMenu(getW(), more); },
    }, icon('more'));
    this.el = h('article', { class: 'wcard', role: 'listitem', dataset: { name: w.name } },
      h('header', { class: 'card-head' },
        h('span', { class: 'sdot' }),
        h('a', { class: 'wname', href: `#/workers/${encodeURIComponent(w.name)}`, text: w.name }),
        this.ns),
      h('div', { class: 'card-status' }, this.pill, this.inst),
      h('div', { class: 'card-graph' }, h('span', { class: 'graph-caption', text: 'CPU · 60 s' }), this.spark),
      h('div', { class: 'card-metrics' }, mCpu, mMem, mUp, mRs),
      h('footer', { class: 'card-actions' }, this.buttons, h('span', { class: 'grow' }), more));
    this.el.addEventListener('click', () => grid.select(this.name));
  }

  update(w, now, force) {
    if (force || this.data !== w) {
      this.data = w;
      setStatus(this.pill, w.status);
      this.el.dataset.tone = tone(w.status);
      toggle(this.el, 'disabled', !w.enabled);
      setText(this.ns, w.namespace || 'default');
      setText(this.v.rs, restartsTotal(w));
      toggle(this.v.rs, 'bad', ((w.restarts && w.restarts.error) || 0) > 0);
      const dots = (w.instances || []).slice(0, 24).map((i) => h('span', { class: `idot tone-${tone(i.status)}`, title: `#${i.index} ${i.status}` }));
      this.inst.replaceChildren(...dots, h('span', { class: 'inst-count', text: `${w.instances_running}/${w.instances_wanted}` }));
      const startable = showsStart(w);
      this.startBtn.hidden = !startable;
      this.stopBtn.hidden = startable;
      for (const b of this.buttons) b.sync();
    }
    toggle(this.el, 'selected', this.grid.selected === w.name);
    this.live(now);
  }

  live(now) {
    const w = this.data;
    const m = this.grid.model;
    setText(this.v.cpu, fmt.percent(m.cpu(w)));
    setText(this.v.mem, fmt.bytes(m.memory(w)));
    setText(this.v.up, fmt.duration(m.uptime(w, now)));
    if (this.el.isConnected) drawSparkline(this.spark, m.spark.get(w.name), this.grid.width(), SPARK_H);
  }
}
