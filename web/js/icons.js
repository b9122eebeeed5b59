// The inline SVG icon set (24x24, stroked; shapes after Feather, MIT).  No icon font, no
// CDN: the dashboard works air-gapped.  icon('play') -> <svg class="icon">.
//
// Shape codes: p: path d | l: line x1 y1 x2 y2 | c: circle cx cy r | r: rect x y w h [rx]
//              pl: polyline points | pg: polygon points
import { svg } from './dom.js';

const SHAPES = {
  play: ['pg:6 4 20 12 6 20 6 4'],
  stop: ['r:6 6 12 12 2'],
  restart: ['pl:23 4 23 10 17 10', 'p:M20.49 15a9 9 0 1 1-2.12-9.36L23 10'],
  reload: ['pl:23 4 23 10 17 10', 'pl:1 20 1 14 7 14', 'p:M3.51 9a9 9 0 0 1 14.85-3.36L23 10M1 14l4.64 4.36A9 9 0 0 0 20.49 15'],
  edit: ['p:M17 3a2.83 2.83 0 1 1 4 4L7.5 20.5 2 22l1.5-5.5L17 3z'],
  trash: ['pl:3 6 5 6 21 6', 'p:M19 6v14a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V6m3 0V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2', 'l:10 11 10 17', 'l:14 11 14 17'],
  plus: ['l:12 5 12 19', 'l:5 12 19 12'],
  search: ['c:11 11 7', 'l:21 21 16.2 16.2'],
  bell: ['p:M18 8A6 6 0 0 0 6 8c0 7-3 9-3 9h18s-3-2-3-9', 'p:M13.73 21a2 2 0 0 1-3.46 0'],
  lock: ['r:3 11 18 11 2', 'p:M7 11V7a5 5 0 0 1 10 0v4'],
  unlock: ['r:3 11 18 11 2', 'p:M7 11V7a5 5 0 0 1 9.9-1'],
  logout: ['p:M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4', 'pl:16 17 21 12 16 7', 'l:21 12 9 12'],
  power: ['p:M18.36 6.64a9 9 0 1 1-12.73 0', 'l:12 2 12 12'],
  save: ['p:M19 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h11l5 5v11a2 2 0 0 1-2 2z', 'pl:17 21 17 13 7 13 7 21', 'pl:7 3 7 8 15 8'],
  'chevron-down': ['pl:6 9 12 15 18 9'],
  'chevron-right': ['pl:9 18 15 12 9 6'],
  'chevron-left': ['pl:15 18 9 12 15 6'],
  x: ['l:18 6 6 18', 'l:6 6 18 18'],
  check: ['pl:20 6 9 17 4 12'],
  more: ['c:12 12 1', 'c:19 12 1', 'c:5 12 1'],
  menu: ['l:3 12 21 12', 'l:3 6 21 6', 'l:3 18 21 18'],
  sun: ['c:12 12 4.5', 'l:12 1 12 3', 'l:12 21 12 23', 'l:4.22 4.22 5.64 5.64', 'l:18.36 18.36 19.78 19.78', 'l:1 12 3 12', 'l:21 12 23 12', 'l:4.22 19.78 5.64 18.36', 'l:18.36 5.64 19.78 4.22'],
  moon: ['p:M21 12.79A9 9 0 1 1 11.21 3 7 7 0 0 0 21 12.79z'],
  monitor: ['r:2 3 20 14 2', 'l:8 21 16 21', 'l:12 17 12 21'],
  table: ['l:8 6 21 6', 'l:8 12 21 12', 'l:8 18 21 18', 'l:3 6 3.01 6', 'l:3 12 3.01 12', 'l:3 18 3.01 18'],
  cards: ['r:3 3 7 7 1.5', 'r:14 3 7 7 1.5', 'r:14 14 7 7 1.5', 'r:3 14 7 7 1.5'],
  download: ['p:M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4', 'pl:7 10 12 15 17 10', 'l:12 15 12 3'],
  pause: ['r:6 4 4 16 1', 'r:14 4 4 16 1'],
  'follow': ['pl:7 13 12 18 17 13', 'pl:7 6 12 11 17 6'],
  copy: ['r:9 9 13 13 2', 'p:M5 15H4a2 2 0 0 1-2-2V4a2 2 0 0 1 2-2h9a2 2 0 0 1 2 2v1'],
  eye: ['p:M1 12s4-8 11-8 11 8 11 8-4 8-11 8-11-8-11-8z', 'c:12 12 3'],
  'eye-off': ['p:M17.94 17.94A10.07 10.07 0 0 1 12 20c-7 0-11-8-11-8a18.45 18.45 0 0 1 5.06-5.94M9.9 4.24A9.12 9.12 0 0 1 12 4c7 0 11 8 11 8a18.5 18.5 0 0 1-2.16 3.19m-6.72-1.07a3 3 0 1 1-4.24-4.24', 'l:1 1 23 23'],
  key: ['c:7.5 15.5 5.5', 'p:M11.4 11.6 21 2', 'p:M16 7l3 3', 'p:M19 4l2 2'],
  shield: ['p:M12 22s8-4 8-10V5l-8-3-8 3v7c0 6 8 10 8 10z'],
  info: ['c:12 12 10', 'l:12 16 12 12', 'l:12 8 12.01 8'],
  warning: ['p:M10.29 3.86L1.82 18a2 2 0 0 0 1.71 3h16.94a2 2 0 0 0 1.71-3L13.71 3.86a2 2 0 0 0-3.42 0z', 'l:12 9 12 13', 'l:12 17 12.01 17'],
  error: ['c:12 12 10', 'l:12 8 12 12', 'l:12 16 12.01 16'],
  ok: ['p:M22 11.08V12a10 10 0 1 1-5.93-9.14', 'pl:22 4 12 14.01 9 11.01'],
  activity: ['pl:22 12 18 12 15 21 9 3 6 12 2 12'],
  terminal: ['pl:4 17 10 11 4 5', 'l:12 19 20 19'],
  logs: ['p:M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z', 'pl:14 2 14 8 20 8', 'l:16 13 8 13', 'l:16 17 8 17', 'l:10 9 8 9'],
  library: ['p:M2 3h6a4 4 0 0 1 4 4v14a3 3 0 0 0-3-3H2z', 'p:M22 3h-6a4 4 0 0 0-4 4v14a3 3 0 0 1 3-3h7z'],
  volume: ['l:18 20 18 10', 'l:12 20 12 4', 'l:6 20 6 14'],
  server: ['r:2 2 20 8 2', 'r:2 14 20 8 2', 'l:6 6 6.01 6', 'l:6 18 6.01 18'],
  settings: ['l:4 21 4 14', 'l:4 10 4 3', 'l:12 21 12 12', 'l:12 8 12 3', 'l:20 21 20 16', 'l:20 12 20 3', 'l:1 14 7 14', 'l:9 8 15 8', 'l:17 16 23 16'],
  cpu: ['r:4 4 16 16 2', 'r:9 9 6 6', 'l:9 1 9 4', 'l:15 1 15 4', 'l:9 20 9 23', 'l:15 20 15 23', 'l:20 9 23 9', 'l:20 14 23 14', 'l:1 9 4 9', 'l:1 14 4 14'],
  memory: ['l:22 12 2 12', 'p:M5.45 5.11L2 12v6a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2v-6l-3.45-6.89A2 2 0 0 0 16.76 4H7.24a2 2 0 0 0-1.79 1.11z', 'l:6 16 6.01 16', 'l:10 16 10.01 16'],
  clock: ['c:12 12 10', 'pl:12 6 12 12 16 14'],
  globe: ['c:12 12 10', 'l:2 12 22 12', 'p:M12 2a15.3 15.3 0 0 1 4 10 15.3 15.3 0 0 1-4 10 15.3 15.3 0 0 1-4-10 15.3 15.3 0 0 1 4-10z'],
  filter: ['pg:22 3 2 3 10 12.46 10 19 14 21 14 12.46 22 3'],
  keyboard: ['r:2 5 20 14 2', 'p:M6 9h.01M10 9h.01M14 9h.01M18 9h.01M8 13h.01M12 13h.01M16 13h.01M7 16h10'],
  layers: ['pg:12 2 2 7 12 12 22 7 12 2', 'pl:2 17 12 22 22 17', 'pl:2 12 12 17 22 12'],
  tag: ['p:M20.59 13.41l-7.17 7.17a2 2 0 0 1-2.83 0L2 12V2h10l8.59 8.59a2 2 0 0 1 0 2.82z', 'l:7 7 7.01 7'],
  zap: ['pg:13 2 3 14 12 14 11 22 21 10 12 10 13 2'],
  code: ['pl:16 18 22 12 16 6', 'pl:8 6 2 12 8 18'],
  external: ['p:M18 13v6a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2V8a2 2 0 0 1 2-2h6', 'pl:15 3 21 3 21 9', 'l:10 14 21 3'],
  back: ['l:19 12 5 12', 'pl:12 19 5 12 12 5'],
  network: ['c:18 5 3', 'c:6 12 3', 'c:18 19 3', 'l:8.59 13.51 15.42 17.49', 'l:15.41 6.51 8.59 10.49'],
  eraser: ['p:M20 20H9L4 15a2 2 0 0 1 0-2.83L13.17 3a2 2 0 0 1 2.83 0L21 8a2 2 0 0 1 0 2.83L12 20', 'l:9 9 15 15'],
  power_off: ['p:M18.36 6.64a9 9 0 1 1-12.73 0', 'l:12 2 12 12'],
  toggle: ['r:1 5 22 14 7', 'c:16 12 3'],
  history: ['p:M3 3v5h5', 'p:M3.05 13A9 9 0 1 0 6 5.3L3 8', 'pl:12 7 12 12 15 15'],
  sort: ['pl:7 15 12 20 17 15', 'pl:7 9 12 4 17 9'],
};

const cache = new Map();

function build(spec) {
  const out = [];
  for (const item of spec) {
    const i = item.indexOf(':');
    const kind = item.slice(0, i);
    const v = item.slice(i + 1);
    const n = v.split(' ').map(Number);
    if (kind === 'p') out.push(svg('path', { d: v }));
    else if (kind === 'l') out.push(svg('line', { x1: n[0], y1: n[1], x2: n[2], y2: n[3] }));
    else if (kind === 'c') out.push(svg('circle', { cx: n[0], cy: n[1], r: n[2] }));
    else if (kind === 'r') out.push(svg('rect', { x: n[0], y: n[1], width: n[2], height: n[3], rx: n[4] || 0 }));
    else if (kind === 'pl') out.push(svg('polyline', { points: v }));
    else if (kind === 'pg') out.push(svg('polygon', { points: v }));
  }
  return out;
}

/** A fresh <svg> for the named icon (aria-hidden: the button or link carries the label). */
export function icon(name, cls = '') {
  let tpl = cache.get(name);
  if (!tpl) {
    const spec = SHAPES[name];
    if (!spec) throw new Error(`unknown icon ${name}`);
    tpl = svg('svg', { viewBox: '0 0 24 24', 'aria-hidden': 'true', focusable: 'false' }, build(spec));
    cache.set(name, tpl);
  }
  const el = tpl.cloneNode(true);
  el.setAttribute('class', cls ? `icon ${cls}` : 'icon');
  return el;
}

/** The apm logo mark: a rounded square with three stacked process bars. */
export function logo(cls = 'logo') {
  return svg('svg', { viewBox: '0 0 32 32', class: cls, 'aria-hidden': 'true' },
    svg('rect', { x: 1, y: 1, width: 30, height: 30, rx: 8, class: 'logo-bg' }),
    svg('rect', { x: 8, y: 9, width: 16, height: 3, rx: 1.5, class: 'logo-bar' }),
    svg('rect', { x: 8, y: 14.5, width: 11, height: 3, rx: 1.5, class: 'logo-bar' }),
    svg('rect', { x: 8, y: 20, width: 13.5, height: 3, rx: 1.5, class: 'logo-bar' }),
    svg('circle', { cx: 23.5, cy: 16, r: 2.2, class: 'logo-dot' }));
}

export const ICON_NAMES = Object.keys(SHAPES);
