// Server Info: host facts, CPU / RAM / load, the daemon, network interfaces, and the
// latency cards (browser -> server round trip; server -> TCP targets, "unreachable"
// on an air-gapped host instead of a spinner forever).
import { h, listen, replace, setText } from '../dom.js';
import { icon } from '../icons.js';
import * as fmt from '../format.js';
import { spinner } from '../components/bits.js';

const REFRESH = 15000;
const LATENCY_EVERY = 30000;

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => h('div', { class: 'kv-row' }, h('dt', { text: k }), h('dd', null, v instanceof Node ? v : String(v ?? '–')))));
}

function bar(pct, label) {
  const fill = h('span', { class: 'bar-fill' });
  const p = Math.max(0, Math.min(100, pct || 0));
  fill.style.width = `${p}%`;
  return h('div', { class: 'bar', dataset: { level: p > 90 ? 'err' : p > 70 ? 'warn' : 'ok' }, role: 'img', 'aria-label': label }, fill);
}

function card(title, iconName, ...body) {
  return h('section', { class: 'card info-card' }, h('h2', { class: 'card-title' }, icon(iconName), title), body);
}

export class ServerView {
  constructor(app) {
    this.app = app;
    this.offs = [];
    this.el = h('section', { class: 'view view-server' });
  }

  mount() {
    this.app.shell.setHeader('Server Info', '', [
      h('button', { type: 'button', class: 'btn btn-sm', onclick: () => { this.load(); this.latency(); } }, icon('reload'), 'Refresh'),
    ]);
    this.grid = h('div', { class: 'info-grid' }, h('div', { class: 'loading' }, spinner(), ' Reading the host…'));
    this.browserMs = h('div', { class: 'lat-value', text: '…' });
    this.browserNote = h('div', { class: 'lat-note muted', text: 'GET /api/v1/ping, best of 5' });
    this.targets = h('ul', { class: 'lat-targets' }, h('li', { class: 'muted' }, spinner(), ' Probing…'));
    this.targetsNote = h('div', { class: 'lat-note muted' });
    const latency = h('div', { class: 'lat-grid' },
      h('section', { class: 'card lat-card' }, h('h2', { class: 'card-title' }, icon('monitor'), 'Browser → Server'), this.browserMs, this.browserNote),
      h('section', { class: 'card lat-card' }, h('h2', { class: 'card-title' }, icon('globe'), 'Server → Internet'), this.targets, this.targetsNote));
    this.net = h('div', { class: 'card table-card' });
    this.el.replaceChildren(
      h('h2', { class: 'section-title', text: 'Latency' }), latency,
      h('h2', { class: 'section-title', text: 'Host' }), this.grid,
      h('h2', { class: 'section-title', text: 'Network interfaces' }), this.net);
    this.offs.push(listen(this.app.workers, 'stats', () => this.live()));
    this.load();
    this.latency();
    this.timer = setInterval(() => this.load(), REFRESH);
    this.latTimer = setInterval(() => this.latency(), LATENCY_EVERY);
  }

  destroy() {
    for (const off of this.offs) off();
    clearInterval(this.timer);
    clearInterval(this.latTimer);
  }

  async load() {
    let info;
    try {
      info = await this.app.api.systemInfo();
    } catch (err) {
      replace(this.grid, h('div', { class: 'form-error', role: 'alert', text: err.message }));
      return;
    }
    if (!this.el.isConnected) return;
    this.info = info;
    this.render(info);
  }

  render({ host, daemon, gui }) {
    const cpu = host.cpu || {};
    const mem = host.memory || {};
    const swap = host.swap || {};
    const speed = cpu.speed ? `${(cpu.speed.current_mhz / 1000).toFixed(2)} GHz${cpu.speed.max_mhz ? ` (max ${(cpu.speed.max_mhz / 1000).toFixed(2)} GHz)` : ''}` : '–';
    this.app.shell.setSubtitle(`${host.hostname} · ${host.os.name}`);
    this.cpuNow = h('span', { class: 'big-num' });
    this.cpuBar = h('div');
    const load = host.load || [];
    const threads = cpu.threads || 1;
    const loadRows = ['1 min', '5 min', '15 min'].map((label, i) => h('div', { class: 'load-row' },
      h('span', { class: 'load-label', text: label }), bar(((load[i] || 0) / threads) * 100, `load ${label}`), h('span', { class: 'load-val mono', text: load[i] != null ? load[i].toFixed(2) : '–' })));
    const statuses = Object.entries(daemon.by_status || {}).map(([s, n]) => `${n} ${s}`).join(', ') || 'none';
    replace(this.grid,
      card('System', 'server', kv([
        ['Hostname', host.hostname], ['OS', host.os.name], ['Kernel', host.kernel], ['Architecture', host.arch],
        ['Uptime', fmt.duration(host.uptime)], ['Booted', fmt.datetime(host.boot_time)], ['Python', host.python],
      ])),
      card('CPU', 'cpu', h('div', { class: 'card-hero' }, this.cpuNow, h('span', { class: 'muted', text: 'in use' })), this.cpuBar,
        kv([['Model', cpu.model], ['Threads', cpu.threads], ['Cores', cpu.cores ?? '–'], ['Speed', speed]])),
      card('Memory', 'memory', h('div', { class: 'card-hero' }, h('span', { class: 'big-num', text: fmt.percent(mem.percent, 0) }), h('span', { class: 'muted', text: `of ${fmt.bytes(mem.total)}` })),
        bar(mem.percent, 'memory in use'),
        kv([['Used', fmt.bytes(mem.used)], ['Available', fmt.bytes(mem.available)], ['Total', fmt.bytes(mem.total)],
          ['Swap', swap.total ? `${fmt.bytes(swap.used)} of ${fmt.bytes(swap.total)}` : 'none']])),
      card('Load average', 'activity', h('div', { class: 'load' }, loadRows), h('p', { class: 'muted small', text: `Bars are relative to ${fmt.plural(threads, 'thread')}.` })),
      card('apm daemon', 'layers', kv([
        ['Version', daemon.version], ['PID', daemon.pid], ['Uptime', fmt.duration(daemon.uptime)], ['Workers', `${daemon.workers} (${statuses})`],
        ['Instances running', daemon.instances_running], ['State', h('code', { text: daemon.state_dir })], ['Logs', h('code', { text: daemon.log_dir })],
        ['Daemon log', h('code', { text: daemon.daemon_log })],
      ])),
      card('Dashboard', 'monitor', kv([
        ['Address', gui.url || '–'], ['Bind', `${gui.bind}:${gui.port}`], ['TLS', gui.tls ? 'on' : 'off'], ['Password', gui.password_set ? 'set' : 'not set'],
      ])));
    this.live();
    const rows = (host.network || []).map((n) => h('tr', null,
      h('td', null, h('span', { class: `ifdot ${n.up ? 'up' : 'down'}`, title: n.up ? 'up' : 'down' }), h('span', { class: 'mono', text: n.name })),
      h('td', null, n.addresses.length ? h('ul', { class: 'addr-list' }, n.addresses.map((a) => h('li', null, h('span', { class: 'mono', text: a.address }), h('span', { class: 'chip', text: a.family })))) : h('span', { class: 'muted', text: '—' })),
      h('td', { class: 'mono', text: n.mac || '–' }),
      h('td', { class: 'c-num', text: n.mtu ?? '–' }),
      h('td', { class: 'c-num', text: n.speed_mbps ? `${n.speed_mbps} Mb/s` : '–' }),
      h('td', { class: 'c-num', text: fmt.bytes(n.rx_bytes) }),
      h('td', { class: 'c-num', text: fmt.bytes(n.tx_bytes) })));
    replace(this.net, h('table', { class: 'itable net-table' },
      h('thead', null, h('tr', null, ['Interface', 'Addresses', 'MAC', 'MTU', 'Speed', 'RX', 'TX'].map((t, i) => h('th', { scope: 'col', class: [3, 4, 5, 6].includes(i) ? 'c-num' : null, text: t })))),
      h('tbody', null, rows)));
  }

  live() {
    const host = this.app.workers.host;
    if (!host || !this.cpuNow) return;
    setText(this.cpuNow, fmt.percent(host.cpu, 0));
    replace(this.cpuBar, bar(host.cpu, 'CPU in use'));
  }

  async latency() {
    try {
      const ms = await this.app.api.ping(5);
      setText(this.browserMs, fmt.ms(ms));
      this.browserMs.dataset.level = ms > 200 ? 'err' : ms > 50 ? 'warn' : 'ok';
    } catch {
      setText(this.browserMs, 'unreachable');
      this.browserMs.dataset.level = 'err';
    }
    let res;
    try {
      res = await this.app.api.latency();
    } catch (err) {
      replace(this.targets, h('li', { class: 'form-error', text: err.message }));
      return;
    }
    replace(this.targets, res.targets.map((t) => h('li', { class: `lat-target ${t.ok ? 'ok' : 'bad'}` },
      h('span', { class: 'mono lat-host', text: t.target }),
      t.ok ? h('span', { class: 'lat-ms', text: fmt.ms(t.ms) }) : h('span', { class: 'pill tone-err', title: t.error || '' }, h('span', { class: 'dot' }), h('span', { text: /timeout/.test(t.error || '') ? 'timeout' : 'unreachable' })),
      !t.ok && t.error ? h('span', { class: 'lat-why muted', text: t.error }) : null)));
    setText(this.targetsNote, `TCP connect time, ${res.timeout_ms} ms limit · targets in Settings → General · every 30 s`);
  }
}
