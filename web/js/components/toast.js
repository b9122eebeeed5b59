// Toasts: short messages in an aria-live region (errors use role=alert).
import { h } from '../dom.js';
import { icon } from '../icons.js';

const ICON = { info: 'info', ok: 'ok', warn: 'warning', err: 'error' };

export class Toasts {
  constructor(parent) {
    this.el = h('div', { class: 'toasts', 'aria-live': 'polite', 'aria-relevant': 'additions' });
    parent.append(this.el);
  }

  /** show('Saved', {tone: 'ok'}); show(err.message, {tone: 'err', hint: err.hint}) */
  show(message, { tone = 'info', hint = '', timeout = tone === 'err' ? 8000 : 4000, action = null } = {}) {
    const close = () => {
      el.classList.add('leaving');
      setTimeout(() => el.remove(), 180);
    };
    const el = h('div', { class: `toast tone-${tone}`, role: tone === 'err' ? 'alert' : 'status' },
      icon(ICON[tone] || 'info', 'toast-icon'),
      h('div', { class: 'toast-body' },
        h('div', { class: 'toast-msg', text: message }),
        hint ? h('div', { class: 'toast-hint', text: hint }) : null),
      action ? h('button', { class: 'btn btn-sm btn-ghost', type: 'button', text: action.label, onclick: () => { action.run(); close(); } }) : null,
      h('button', { class: 'icon-btn toast-close', type: 'button', 'aria-label': 'Dismiss', onclick: close }, icon('x')));
    this.el.append(el);
    while (this.el.children.length > 5) this.el.firstChild.remove();
    if (timeout) setTimeout(close, timeout);
    return close;
  }

  error(err, prefix = '') {
    const msg = err && err.message ? err.message : String(err);
    return this.show(prefix ? `${prefix}: ${msg}` : msg, { tone: 'err', hint: (err && err.hint) || '' });
  }
}
