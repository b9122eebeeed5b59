// ANSI SGR colour codes -> styled text nodes.  Output is built with text nodes and
// <span> elements only (classes for the 16 base colours, CSSOM colours for 256/RGB).
import { h } from './dom.js';

// CSI sequences, OSC strings (BEL or ST terminated) and two-byte escapes.
const ESC_RE = /\x1b\[([0-9;:?]*)([A-Za-z@`])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]/g;
const CTRL_RE = /[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g;

export function stripAnsi(text) {
  return String(text).replace(ESC_RE, '').replace(CTRL_RE, '');
}

function color256(n) {
  if (n < 16) return n;
  if (n >= 232) {
    const g = 8 + (n - 232) * 10;
    return `rgb(${g},${g},${g})`;
  }
  const i = n - 16;
  const lv = (v) => (v === 0 ? 0 : 55 + v * 40);
  return `rgb(${lv(Math.floor(i / 36))},${lv(Math.floor(i / 6) % 6)},${lv(i % 6)})`;
}

function applySgr(st, params) {
  const p = params.length ? params.split(/[;:]/).map((x) => (x === '' ? 0 : Number(x))) : [0];
  for (let i = 0; i < p.length; i += 1) {
    const c = p[i];
    if (c === 0) Object.assign(st, { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false });
    else if (c === 1) st.bold = true;
    else if (c === 2) st.dim = true;
    else if (c === 3) st.italic = true;
    else if (c === 4) st.underline = true;
    else if (c === 7) st.inverse = true;
    else if (c === 22) { st.bold = false; st.dim = false; }
    else if (c === 23) st.italic = false;
    else if (c === 24) st.underline = false;
    else if (c === 27) st.inverse = false;
    else if (c >= 30 && c <= 37) st.fg = c - 30;
    else if (c >= 90 && c <= 97) st.fg = c - 90 + 8;
    else if (c === 39) st.fg = null;
    else if (c >= 40 && c <= 47) st.bg = c - 40;
    else if (c >= 100 && c <= 107) st.bg = c - 100 + 8;
    else if (c === 49) st.bg = null;
    else if (c === 38 || c === 48) {
      let value = null;
      if (p[i + 1] === 5 && p[i + 2] != null) {
        value = color256(p[i + 2] & 255);
        i += 2;
      } else if (p[i + 1] === 2 && p[i + 4] != null) {
        value = `rgb(${p[i + 2] & 255},${p[i + 3] & 255},${p[i + 4] & 255})`;
        i += 4;
      }
      if (c === 38) st.fg = value;
      else st.bg = value;
    }
  }
}

/** Parse into [{text, style|null}] segments. */
export function parseAnsi(text) {
  const out = [];
  const st = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false };
  let styled = false;
  let last = 0;
  const s = String(text);
  const push = (chunk) => {
    if (!chunk) return;
    const clean = chunk.replace(CTRL_RE, '');
    if (clean) out.push({ text: clean, style: styled ? { ...st } : null });
  };
  ESC_RE.lastIndex = 0;
  let m;
  while ((m = ESC_RE.exec(s)) !== null) {
    push(s.slice(last, m.index));
    last = ESC_RE.lastIndex;
    if (m[2] === 'm') {
      applySgr(st, m[1] || '');
      styled = st.fg != null || st.bg != null || st.bold || st.dim || st.italic || st.underline || st.inverse;
    }
  }
  push(s.slice(last));
  return out;
}

/** Append the segments of `text` to `parent` as text nodes / spans. */
export function renderAnsi(parent, text) {
  if (text.indexOf('\x1b') === -1) {
    parent.append(text.replace(CTRL_RE, ''));
    return;
  }
  for (const seg of parseAnsi(text)) {
    if (!seg.style) {
      parent.append(seg.text);
      continue;
    }
    const s = seg.style;
    let fg = s.fg;
    let bg = s.bg;
    if (s.inverse) [fg, bg] = [bg == null ? 'inv' : bg, fg == null ? 'inv' : fg];
    const cls = [];
    if (typeof fg === 'number') cls.push(`a-fg${fg}`);
    if (typeof bg === 'number') cls.push(`a-bg${bg}`);
    if (fg === 'inv') cls.push('a-fginv');
    if (bg === 'inv') cls.push('a-bginv');
    if (s.bold) cls.push('a-b');
    if (s.dim) cls.push('a-dim');
    if (s.italic) cls.push('a-i');
    if (s.underline) cls.push('a-u');
    const span = h('span', { class: cls.join(' ') || null, text: seg.text });
    if (typeof fg === 'string' && fg !== 'inv') span.style.color = fg;
    if (typeof bg === 'string' && bg !== 'inv') span.style.backgroundColor = bg;
    parent.append(span);
  }
}
