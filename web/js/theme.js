// Theme: applies the UI settings to <html> (data-theme, accent, font size, compact) and
// caches the resolved colours the canvas charts need.
let cached = null;

const PALETTE_VARS = ['--chart-1', '--chart-2', '--chart-3', '--chart-4', '--chart-5', '--chart-6', '--chart-7', '--chart-8'];

export function applyUi(ui, root = document.documentElement) {
  const theme = ui.theme || 'system';
  const dark = theme === 'dark' || (theme === 'system' && window.matchMedia('(prefers-color-scheme: dark)').matches);
  root.dataset.theme = dark ? 'dark' : 'light';
  root.dataset.themeSetting = theme;
  const accent = /^#[0-9a-f]{6}$/i.test(ui.accent || '') ? ui.accent : '#3b82f6';
  root.style.setProperty('--accent', accent);
  root.style.setProperty('--accent-fg', contrastText(accent));
  root.style.setProperty('--font-size', `${Math.min(24, Math.max(10, Number(ui.font_size) || 14))}px`);
  root.classList.toggle('compact', !!ui.compact);
  const meta = document.querySelector('meta[name="theme-color"]');
  if (meta) meta.setAttribute('content', dark ? '#0c1017' : '#f5f6f8');
  cached = null;
}

/** Black or white text, whichever reads better on `hex`. */
export function contrastText(hex) {
  const n = parseInt(hex.slice(1), 16);
  const lin = (c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  const l = 0.2126 * lin((n >> 16) & 255) + 0.7152 * lin((n >> 8) & 255) + 0.0722 * lin(n & 255);
  return l > 0.4 ? '#0b0e14' : '#ffffff';
}

/** Resolved colours for canvas drawing (recomputed after a theme change). */
export function colors() {
  if (cached) return cached;
  const cs = getComputedStyle(document.documentElement);
  const v = (name) => cs.getPropertyValue(name).trim();
  cached = {
    accent: v('--accent') || '#3b82f6',
    text: v('--text-2'),
    faint: v('--text-3'),
    grid: v('--grid'),
    surface: v('--surface'),
    ok: v('--ok'),
    warn: v('--warn'),
    err: v('--err'),
    info: v('--info'),
    palette: PALETTE_VARS.map(v),
    mono: v('--mono'),
    sans: v('--sans'),
  };
  return cached;
}

export function invalidateColors() {
  cached = null;
}
