// Dialogs on the native <dialog> element (focus trap, Esc, ::backdrop for free).
//   await confirmDialog({title, message, confirmLabel, danger}) -> true/false
//   await promptDialog({title, label, value}) -> string or null
//   openDialog({title, body, actions, wide}) -> {dialog, result: Promise, close(value)}
import { h, nextId } from '../dom.js';
import { icon } from '../icons.js';

export function openDialog({ title, body, actions = [], wide = false, className = '', onSubmit = null }) {
  const titleId = nextId('dlg');
  const footer = h('div', { class: 'modal-actions' });
  let resolve;
  const result = new Promise((r) => { resolve = r; });
  const dialog = h('dialog', { class: `modal ${wide ? 'modal-wide' : ''} ${className}`, 'aria-labelledby': titleId });
  const close = (value) => {
    if (dialog.open) dialog.close();
    dialog.remove();
    resolve(value);
  };
  for (const a of actions) {
    footer.append(h('button', {
      type: a.submit ? 'submit' : 'button',
      class: `btn ${a.tone ? `btn-${a.tone}` : ''}`,
      autofocus: a.autofocus || false,
      onclick: a.submit ? null : () => close(a.value),
    }, a.icon ? icon(a.icon) : null, a.label));
  }
  const form = h('form', { class: 'modal-form', novalidate: true },
    h('header', { class: 'modal-head' },
      h('h2', { id: titleId, text: title }),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close', onclick: () => close(null) }, icon('x'))),
    h('div', { class: 'modal-body' }, body),
    actions.length ? footer : null);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!onSubmit) return close(true);
    const value = await onSubmit();
    if (value !== undefined) close(value);
  });
  dialog.append(form);
  dialog.addEventListener('cancel', (ev) => { ev.preventDefault(); close(null); });
  dialog.addEventListener('click', (ev) => { if (ev.target === dialog) close(null); });
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, result, close };
}

export function confirmDialog({ title, message, detail = '', confirmLabel = 'Confirm', danger = false }) {
  const body = h('div', { class: 'confirm-body' },
    h('p', { text: message }),
    detail ? h('p', { class: 'muted', text: detail }) : null);
  const { result } = openDialog({
    title,
    body,
    className: 'modal-confirm',
    actions: [
      { label: 'Cancel', value: false, tone: 'ghost' },
      { label: confirmLabel, value: true, tone: danger ? 'danger' : 'primary', autofocus: true },
    ],
  });
  return result.then((v) => v === true);
}

export function promptDialog({ title, label, value = '', placeholder = '', confirmLabel = 'OK', hint = '' }) {
  const id = nextId('prompt');
  const input = h('input', { id, class: 'input', value, placeholder, autocomplete: 'off', spellcheck: 'false' });
  const body = h('div', { class: 'field' },
    h('label', { for: id, text: label }), input, hint ? h('div', { class: 'field-help', text: hint }) : null);
  const dlg = openDialog({
    title,
    body,
    actions: [{ label: 'Cancel', value: null, tone: 'ghost' }, { label: confirmLabel, submit: true, tone: 'primary' }],
    onSubmit: () => input.value.trim() || undefined,
  });
  setTimeout(() => { input.focus(); input.select(); }, 0);
  return dlg.result.then((v) => (typeof v === 'string' ? v : null));
}
