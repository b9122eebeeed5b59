// Pop-up menus (row context menus, the "more" button): role=menu, arrow keys, Esc.
import { h } from '../dom.js';
import { icon } from '../icons.js';

let current = null;

export function closeMenu() {
  if (current) {
    current.remove();
    current = null;
  }
}

/**
 * items: [{label, icon, shortcut, disabled, danger, run}] or 'separator'.
 * at: {x, y} (page coordinates) or an element to anchor below.
 */
export function openMenu(items, at, { label = 'Actions' } = {}) {
  closeMenu();
  const prev = document.activeElement;
  const buttons = [];
  const menu = h('div', { class: 'menu', role: 'menu', 'aria-label': label, tabindex: '-1' });
  for (const item of items) {
    if (item === 'separator') {
      menu.append(h('div', { class: 'menu-sep', role: 'separator' }));
      continue;
    }
    const b = h('button', {
      type: 'button', role: 'menuitem', class: `menu-item ${item.danger ? 'danger' : ''}`,
      disabled: item.disabled || false,
      onclick: () => { closeMenu(); if (prev && prev.focus) prev.focus(); item.run(); },
    }, item.icon ? icon(item.icon) : h('span', { class: 'icon' }), h('span', { class: 'menu-label', text: item.label }),
    item.shortcut ? h('kbd', { text: item.shortcut }) : null);
    buttons.push(b);
    menu.append(b);
  }
  menu.addEventListener('keydown', (ev) => {
    const enabled = buttons.filter((b) => !b.disabled);
    const i = enabled.indexOf(document.activeElement);
    if (ev.key === 'ArrowDown') { ev.preventDefault(); enabled[(i + 1) % enabled.length]?.focus(); }
    else if (ev.key === 'ArrowUp') { ev.preventDefault(); enabled[(i - 1 + enabled.length) % enabled.length]?.focus(); }
    else if (ev.key === 'Escape' || ev.key === 'Tab') { ev.preventDefault(); ev.stopPropagation(); closeMenu(); if (prev && prev.focus) prev.focus(); }
  });
  document.body.append(menu);
  current = menu;
  let x;
  let y;
  if (at instanceof Element) {
    const r = at.getBoundingClientRect();
    x = r.right - menu.offsetWidth;
    y = r.bottom + 4;
  } else {
    x = at.x;
    y = at.y;
  }
  const w = menu.offsetWidth;
  const hgt = menu.offsetHeight;
  x = Math.max(8, Math.min(x, window.innerWidth - w - 8));
  if (y + hgt > window.innerHeight - 8) y = Math.max(8, y - hgt - (at instanceof Element ? at.offsetHeight + 8 : 0));
  menu.style.left = `${x}px`;
  menu.style.top = `${y}px`;
  const first = buttons.find((b) => !b.disabled);
  if (first) first.focus();
  setTimeout(() => {
    const away = (ev) => {
      if (current !== menu) { document.removeEventListener('pointerdown', away, true); return; }
      if (!menu.contains(ev.target)) { closeMenu(); document.removeEventListener('pointerdown', away, true); }
    };
    document.addEventListener('pointerdown', away, true);
  }, 0);
  return menu;
}
