// Small shared pieces: status pills, chips, action buttons bound to the actions table,
// empty states, switches, segmented controls.
import { h, nextId, setText } from '../dom.js';
import { icon } from '../icons.js';
import { action, labelOf, shortcutText } from '../actions.js';
import { tone } from '../store.js';

export function statusPill(status) {
  const el = h('span', { class: 'pill' }, h('span', { class: 'dot' }), h('span', { class: 'pill-text' }));
  setStatus(el, status);
  return el;
}

export function setStatus(pill, status) {
  if (pill.dataset.status === status) return;
  pill.dataset.status = status;
  pill.className = `pill tone-${tone(status)}`;
  setText(pill.lastChild, status);
}

export function chip(text, cls = '') {
  return h('span', { class: `chip ${cls}`, text });
}

/**
 * A button for one action of the table.  `getWorker` returns the worker it acts on
 * (null for global actions).  Call `.sync()` after the worker changed.
 *   variant: 'icon' (icon only, label in aria-label/tooltip), 'full' (icon + label), 'menu'
 */
export function actionButton(ctx, id, getWorker = () => null, { variant = 'icon', cls = '' } = {}) {
  const a = action(id);
  const label = h('span', { class: 'btn-label' });
  const btn = h('button', {
    type: 'button',
    class: `${variant === 'icon' ? 'icon-btn' : 'btn'} ${a.danger ? 'danger' : ''} ${cls}`.trim(),
    dataset: { action: id },
    onclick: (ev) => {
      ev.stopPropagation();
      ctx.perform(a, getWorker());
    },
  }, icon(a.icon), variant === 'icon' ? null : label);
  btn.sync = () => {
    const w = getWorker();
    const text = labelOf(a, w);
    const keys = shortcutText(a);
    const tip = keys ? `${text} (${keys})` : text;
    if (btn.title !== tip) btn.title = tip;
    if (btn.getAttribute('aria-label') !== text) btn.setAttribute('aria-label', text);
    if (variant !== 'icon') setText(label, text);
    const enabled = a.enabled(ctx, w);
    if (btn.disabled === enabled) btn.disabled = !enabled;
  };
  btn.sync();
  return btn;
}

export function emptyState(iconName, title, text, ...actions) {
  return h('div', { class: 'empty' },
    h('div', { class: 'empty-icon' }, icon(iconName)),
    h('h3', { text: title }),
    text ? h('p', { text }) : null,
    actions.length ? h('div', { class: 'empty-actions' }, actions) : null);
}

/** A labelled on/off switch (a real checkbox with role=switch). */
export function switchInput({ label, checked = false, onchange, help = '', id = nextId('sw'), disabled = false }) {
  const input = h('input', { type: 'checkbox', role: 'switch', id, class: 'switch-input', checked, disabled });
  if (onchange) input.addEventListener('change', () => onchange(input.checked));
  const el = h('label', { class: 'switch', for: id },
    input, h('span', { class: 'switch-track', 'aria-hidden': 'true' }, h('span', { class: 'switch-thumb' })),
    h('span', { class: 'switch-label' }, h('span', { text: label }), help ? h('small', { class: 'field-help', text: help }) : null));
  el.input = input;
  return el;
}

/** Segmented control: radio buttons styled as one pill bar. */
export function segmented({ name, options, value, onchange, label }) {
  const group = h('div', { class: 'segmented', role: 'radiogroup', 'aria-label': label });
  for (const opt of options) {
    const id = nextId(name);
    const input = h('input', { type: 'radio', name, id, value: opt.value, checked: opt.value === value, class: 'seg-input' });
    input.addEventListener('change', () => input.checked && onchange(opt.value));
    group.append(input, h('label', { for: id, class: 'seg-label', title: opt.title || opt.label },
      opt.icon ? icon(opt.icon) : null, opt.label ? h('span', { text: opt.label }) : null));
  }
  group.setValue = (v) => {
    for (const input of group.querySelectorAll('input')) input.checked = input.value === v;
  };
  return group;
}

export function spinner(label = 'Loading') {
  return h('span', { class: 'spinner', role: 'status', 'aria-label': label });
}

export function kbd(spec) {
  return h('kbd', { text: spec });
}
