// Settings: General and UI are built from the settings table (GET /settings/schema),
// with a few richer widgets (theme, accent, font size, columns); Security holds the
// password, PIN, lock timeout and API tokens; Log Alerts (views/alerts.js) the log
// alert patterns.  Every change saves at once, and changes made elsewhere (another tab,
// browser or API client) arrive on the live stream and redraw the open section.
import { h, nextId, replace, setText } from '../dom.js';
import { icon } from '../icons.js';
import * as fmt from '../format.js';
import { segmented, spinner, switchInput } from '../components/bits.js';
import { strengthMeter } from '../components/strength.js';
import { openDialog } from '../components/modal.js';
import { COLUMN_LABELS } from '../components/worker-table.js';
import { stableJson } from '../store.js';
import { AlertsPanel } from './alerts.js';

const TABS = [['general', 'General', 'settings'], ['ui', 'Appearance', 'monitor'], ['security', 'Security', 'shield'], ['alerts', 'Log Alerts', 'bell']];
const ACCENTS = ['#3b82f6', '#6366f1', '#8b5cf6', '#ec4899', '#ef4444', '#f97316', '#eab308', '#22c55e', '#14b8a6', '#06b6d4'];
const LOCK_CHOICES = [[0, 'Never'], [300, '5 minutes'], [600, '10 minutes'], [900, '15 minutes'], [1800, '30 minutes'], [3600, '1 hour']];
const GENERAL_GROUPS = [
  ['Live updates', ['auto_refresh', 'refresh_interval', 'health_interval']],
  ['Confirmations', ['confirm_delete', 'confirm_stop', 'confirm_shutdown']],
  ['Logs and defaults', ['tail_lines', 'default_namespace']],
  ['Server Info', ['latency_targets']],
];

function label(key) {
  return fmt.humanize(key);
}

export class SettingsView {
  constructor(app, route) {
    this.app = app;
    this.tab = TABS.some(([id]) => id === route.arg) ? route.arg : 'general';
    this.offs = [];
    this.el = h('section', { class: 'view view-settings' });
  }

  mount() {
    this.app.shell.setHeader('Settings', 'Saved on the daemon, for every browser');
    this.nav = h('nav', { class: 'settings-nav', 'aria-label': 'Settings sections' }, TABS.map(([id, text, ic]) => h('a', {
      class: `settings-link ${id === this.tab ? 'active' : ''}`, href: `#/settings/${id}`, 'aria-current': id === this.tab ? 'page' : null,
    }, icon(ic), text)));
    this.panel = h('div', { class: 'settings-panel' });
    this.el.replaceChildren(h('div', { class: 'settings-layout' }, this.nav, this.panel));
    this.render();
  }

  destroy() {
    for (const off of this.offs) off();
    if (this.alertsPanel) this.alertsPanel.destroy();
  }

  /** A change pushed from another tab or browser: redraw the open section when its values
   *  changed, unless the user is typing in it (then the next visit shows them). */
  settingsChanged(detail = {}) {
    // While this page saves, the stream may bring the change before the PATCH answers: that
    // is our own echo, and redrawing would drop the "Saved" note.
    if (!detail.remote || this.tab === 'alerts' || !this.panel || this.saving) return;
    const now = stableJson(this.app.settings.values[this.tab] || {});
    if (now === this.shown) return;
    const active = document.activeElement;
    if (active && this.panel.contains(active) && active.matches('input:not([type=checkbox]):not([type=radio]):not([type=range]), textarea')) return;
    this.render();
  }

  update(route) {
    const tab = TABS.some(([id]) => id === route.arg) ? route.arg : 'general';
    if (tab === this.tab) return true;
    return false;
  }

  async render() {
    const app = this.app;
    if (!app.settings.schema) {
      replace(this.panel, h('div', { class: 'loading' }, spinner(), ' Loading…'));
      try {
        const [schema, values] = await Promise.all([app.api.settingsSchema(), app.api.settings()]);
        app.settings.schema = schema.settings;
        app.settings.set(values);
      } catch (err) {
        replace(this.panel, h('div', { class: 'form-error', role: 'alert', text: err.message }));
        return;
      }
    }
    this.shown = stableJson(app.settings.values[this.tab] || {});
    if (this.tab === 'general') this.renderGeneral();
    else if (this.tab === 'ui') this.renderUi();
    else if (this.tab === 'alerts') this.renderAlerts();
    else this.renderSecurity();
  }

  renderAlerts() {
    if (this.alertsPanel) this.alertsPanel.destroy();
    this.alertsPanel = new AlertsPanel(this.app);
    replace(this.panel, this.alertsPanel.el);
    this.alertsPanel.mount();
  }

  entry(section, key) {
    return (this.app.settings.schema || []).find((e) => e.section === section && e.key === key);
  }

  async save(section, key, value, status) {
    if (status) setText(status, 'Saving…');
    this.saving = (this.saving || 0) + 1;
    try {
      await this.app.saveSettings({ [section]: { [key]: value } });
      this.shown = stableJson(this.app.settings.values[this.tab] || {});
      if (status) {
        status.className = 'save-status ok';
        setText(status, 'Saved');
        setTimeout(() => { if (status.textContent === 'Saved') setText(status, ''); }, 1500);
      }
      return true;
    } catch (err) {
      if (status) {
        status.className = 'save-status err';
        setText(status, err.message);
      } else {
        this.app.toasts.error(err);
      }
      return false;
    } finally {
      this.saving -= 1;
    }
  }

  /** One setting row, its widget chosen from the schema entry. */
  control(e) {
    const value = this.app.settings.get(e.section, e.key, e.default);
    const status = h('span', { class: 'save-status', role: 'status' });
    const id = nextId(`set-${e.key}`);
    const save = (v) => this.save(e.section, e.key, v, status);
    let widget;
    if (e.type === 'bool') {
      const sw = switchInput({ label: label(e.key), checked: !!value, help: e.help, id, onchange: (v) => save(v) });
      return h('div', { class: 'setting setting-bool' }, sw, status);
    }
    if (e.type === 'int') {
      widget = h('input', { class: 'input input-num', id, type: 'number', min: e.minimum, max: e.maximum, step: '1', value: String(value) });
      widget.addEventListener('change', () => {
        const n = Number(widget.value);
        if (!Number.isInteger(n)) { status.className = 'save-status err'; setText(status, 'A whole number, please'); return; }
        save(n);
      });
    } else if (e.type === 'list') {
      widget = h('textarea', { class: 'input mono', id, rows: Math.max(2, (value || []).length + 1), spellcheck: 'false', value: (value || []).join('\n') });
      widget.addEventListener('change', () => save(widget.value.split('\n').map((s) => s.trim()).filter(Boolean)));
    } else if (e.type === 'enum') {
      widget = h('select', { class: 'input', id }, e.choices.map((c) => h('option', { value: c, text: c })));
      widget.value = value;
      widget.addEventListener('change', () => save(widget.value));
    } else {
      widget = h('input', { class: 'input', id, type: 'text', value: value ?? '', maxlength: e.maximum, autocomplete: 'off' });
      widget.addEventListener('change', () => save(widget.value.trim()));
    }
    return h('div', { class: 'setting' },
      h('div', { class: 'setting-text' }, h('label', { for: id, text: label(e.key) }), h('div', { class: 'field-help', text: e.help })),
      h('div', { class: 'setting-control' }, widget, status));
  }

  renderGeneral() {
    const cards = GENERAL_GROUPS.map(([title, keys]) => h('section', { class: 'card settings-card' },
      h('h2', { class: 'card-title', text: title }),
      keys.map((k) => this.entry('general', k)).filter(Boolean).map((e) => this.control(e))));
    const known = new Set(GENERAL_GROUPS.flatMap(([, keys]) => keys));
    const extra = (this.app.settings.schema || []).filter((e) => e.section === 'general' && !known.has(e.key));
    if (extra.length) cards.push(h('section', { class: 'card settings-card' }, h('h2', { class: 'card-title', text: 'More' }), extra.map((e) => this.control(e))));
    const storage = h('section', { class: 'card settings-card' }, h('h2', { class: 'card-title', text: 'Storage' }), h('div', { class: 'loading' }, spinner()));
    cards.push(storage);
    replace(this.panel, cards);
    this.app.api.systemInfo().then(({ daemon }) => {
      replace(storage, h('h2', { class: 'card-title', text: 'Storage' }),
        h('dl', { class: 'kv' },
          h('div', { class: 'kv-row' }, h('dt', { text: 'State directory' }), h('dd', null, h('code', { text: daemon.state_dir }))),
          h('div', { class: 'kv-row' }, h('dt', { text: 'Worker logs' }), h('dd', null, h('code', { text: daemon.log_dir }))),
          h('div', { class: 'kv-row' }, h('dt', { text: 'Daemon log' }), h('dd', null, h('code', { text: daemon.daemon_log })))),
        h('p', { class: 'muted small', text: 'apm saves its state on every change; “Save state” in the sidebar writes it now.' }));
    }).catch(() => storage.remove());
  }

  renderUi() {
    const s = this.app.settings;
    const status = () => h('span', { class: 'save-status', role: 'status' });
    const themeStatus = status();
    const theme = segmented({
      name: 'theme', label: 'Theme', value: s.get('ui', 'theme', 'system'),
      options: [{ value: 'dark', label: 'Dark', icon: 'moon' }, { value: 'light', label: 'Light', icon: 'sun' }, { value: 'system', label: 'System', icon: 'monitor' }],
      onchange: (v) => this.save('ui', 'theme', v, themeStatus),
    });
    const accentStatus = status();
    const current = s.get('ui', 'accent', '#3b82f6');
    const picker = h('input', { type: 'color', class: 'color-input', value: current, 'aria-label': 'Custom accent colour' });
    picker.addEventListener('change', () => this.save('ui', 'accent', picker.value.toLowerCase(), accentStatus));
    const swatches = h('div', { class: 'swatches', role: 'radiogroup', 'aria-label': 'Accent colour' }, ACCENTS.map((c) => {
      const b = h('button', { type: 'button', class: `swatch-btn ${c === current ? 'active' : ''}`, role: 'radio', 'aria-checked': c === current ? 'true' : 'false', 'aria-label': c, title: c,
        onclick: async () => {
          if (await this.save('ui', 'accent', c, accentStatus)) this.renderUi();
        } });
      b.style.background = c;
      return b;
    }), picker);
    const sizeStatus = status();
    const sizeOut = h('output', { class: 'range-value', text: `${s.get('ui', 'font_size', 14)} px` });
    const size = h('input', { type: 'range', class: 'range', min: '10', max: '24', step: '1', value: String(s.get('ui', 'font_size', 14)), 'aria-label': 'Font size' });
    size.addEventListener('input', () => setText(sizeOut, `${size.value} px`));
    size.addEventListener('change', () => this.save('ui', 'font_size', Number(size.value), sizeStatus));
    const compact = this.control(this.entry('ui', 'compact'));
    const viewStatus = status();
    const view = segmented({
      name: 'viewmode', label: 'Process view', value: s.get('ui', 'view_mode', 'table'),
      options: [{ value: 'table', label: 'Table', icon: 'table' }, { value: 'card', label: 'Cards', icon: 'cards' }],
      onchange: (v) => this.save('ui', 'view_mode', v, viewStatus),
    });
    const row = (title, help, control, st) => h('div', { class: 'setting' },
      h('div', { class: 'setting-text' }, h('div', { class: 'setting-label', text: title }), h('div', { class: 'field-help', text: help })),
      h('div', { class: 'setting-control' }, control, st));
    replace(this.panel,
      h('section', { class: 'card settings-card' }, h('h2', { class: 'card-title', text: 'Look' }),
        row('Theme', 'Dark, light, or follow the operating system.', theme, themeStatus),
        row('Accent colour', 'Buttons, links, selection and charts.', swatches, accentStatus),
        row('Font size', 'The base size of all text.', h('div', { class: 'range-row' }, size, sizeOut), sizeStatus),
        compact),
      h('section', { class: 'card settings-card' }, h('h2', { class: 'card-title', text: 'Workers list' }),
        row('View', 'Table (compact) or cards (with graphs). Phones always get cards.', view, viewStatus),
        this.columnsPicker()));
  }

  columnsPicker() {
    const s = this.app.settings;
    const entry = this.entry('ui', 'columns');
    const all = (entry && entry.choices) || Object.keys(COLUMN_LABELS);
    let chosen = [...s.get('ui', 'columns', [])];
    const st = h('span', { class: 'save-status', role: 'status' });
    const list = h('ol', { class: 'col-list', 'aria-label': 'Columns' });
    const commit = async () => {
      if (await this.save('ui', 'columns', chosen, st)) draw();
    };
    const draw = () => {
      const order = [...chosen, ...all.filter((c) => !chosen.includes(c))];
      replace(list, order.map((c) => {
        const on = chosen.includes(c);
        const id = nextId('col');
        const cb = h('input', { type: 'checkbox', id, checked: on });
        cb.addEventListener('change', () => {
          chosen = cb.checked ? [...chosen, c] : chosen.filter((x) => x !== c);
          commit();
        });
        const i = chosen.indexOf(c);
        const move = (d) => {
          const j = i + d;
          if (i < 0 || j < 0 || j >= chosen.length) return;
          [chosen[i], chosen[j]] = [chosen[j], chosen[i]];
          commit();
        };
        return h('li', { class: `col-item ${on ? '' : 'off'}` },
          h('label', { for: id, class: 'col-label' }, cb, h('span', { text: COLUMN_LABELS[c] || c })),
          h('button', { type: 'button', class: 'icon-btn', 'aria-label': `Move ${COLUMN_LABELS[c] || c} up`, disabled: !on || i === 0, onclick: () => move(-1) }, icon('chevron-down', 'flip')),
          h('button', { type: 'button', class: 'icon-btn', 'aria-label': `Move ${COLUMN_LABELS[c] || c} down`, disabled: !on || i === chosen.length - 1, onclick: () => move(1) }, icon('chevron-down')));
      }));
    };
    draw();
    return h('div', { class: 'setting setting-block' },
      h('div', { class: 'setting-text' }, h('div', { class: 'setting-label', text: 'Table columns' }), h('div', { class: 'field-help', text: 'Which columns the table shows, in this order. Name, status and actions always show.' }), st),
      list);
  }

  // ---------------------------------------------------------------- security
  renderSecurity() {
    const sec = this.app.settings.values.security || {};
    replace(this.panel, this.passwordCard(), this.pinCard(sec), this.lockCard(sec), this.tokensCard());
  }

  passwordCard() {
    const cur = h('input', { class: 'input', type: 'password', autocomplete: 'current-password', id: nextId('pw') });
    const next = h('input', { class: 'input', type: 'password', autocomplete: 'new-password', id: nextId('pw'), minlength: '8' });
    const again = h('input', { class: 'input', type: 'password', autocomplete: 'new-password', id: nextId('pw') });
    const msg = h('div', { class: 'form-msg', role: 'status' });
    const form = h('form', { class: 'stack', novalidate: true },
      field('Current password', cur), field('New password', next, strengthMeter(next)), field('Repeat the new password', again),
      msg, h('div', null, h('button', { type: 'submit', class: 'btn btn-primary' }, icon('key'), 'Change password')));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      msg.className = 'form-msg err';
      if (next.value.length < 8) return setText(msg, 'The new password needs at least 8 characters.');
      if (next.value !== again.value) return setText(msg, 'The two new passwords differ.');
      try {
        await this.app.api.changePassword(cur.value, next.value);
        msg.className = 'form-msg ok';
        setText(msg, 'Password changed. Other browsers were logged out.');
        form.reset();
      } catch (err) {
        setText(msg, `${err.message}${err.hint ? ` — ${err.hint}` : ''}`);
      }
    });
    return h('section', { class: 'card settings-card' }, h('h2', { class: 'card-title' }, icon('key'), 'Password'),
      h('p', { class: 'muted', text: 'At least 8 characters. Changing it logs every other browser out.' }), form);
  }

  pinCard(sec) {
    const pin = h('input', { class: 'input input-pin', type: 'password', inputmode: 'numeric', autocomplete: 'off', maxlength: '6', pattern: '[0-9]*', id: nextId('pin') });
    const pw = h('input', { class: 'input', type: 'password', autocomplete: 'current-password', id: nextId('pw') });
    const msg = h('div', { class: 'form-msg', role: 'status' });
    const state = h('span', { class: `pill ${sec.has_pin ? 'tone-ok' : 'tone-muted'}` }, h('span', { class: 'dot' }), sec.has_pin ? 'PIN set' : 'No PIN');
    const remove = sec.has_pin ? h('button', { type: 'button', class: 'btn danger', onclick: async () => {
      try {
        await this.app.api.removePin();
        await this.refreshSecurity();
        this.app.toasts.show('PIN removed', { tone: 'ok' });
      } catch (err) {
        this.app.toasts.error(err);
      }
    } }, 'Remove PIN') : null;
    const form = h('form', { class: 'stack', novalidate: true },
      h('div', { class: 'field-row' }, field(sec.has_pin ? 'New PIN (4 or 6 digits)' : 'PIN (4 or 6 digits)', pin), field('Current password', pw)),
      msg, h('div', { class: 'btn-row' }, h('button', { type: 'submit', class: 'btn btn-primary' }, sec.has_pin ? 'Change PIN' : 'Set PIN'), remove));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      msg.className = 'form-msg err';
      if (!/^(\d{4}|\d{6})$/.test(pin.value)) return setText(msg, 'The PIN is 4 or 6 digits.');
      if (!pw.value) return setText(msg, 'Enter the current password to set a PIN.');
      try {
        await this.app.api.setPin(pin.value, pw.value);
        await this.refreshSecurity();
        this.app.toasts.show('PIN set: it unlocks the lock screen', { tone: 'ok' });
      } catch (err) {
        setText(msg, `${err.message}${err.hint ? ` — ${err.hint}` : ''}`);
      }
    });
    return h('section', { class: 'card settings-card' }, h('h2', { class: 'card-title' }, icon('lock'), 'PIN quick unlock', state),
      h('p', { class: 'muted', text: 'A PIN unlocks a locked dashboard; it never logs in fresh. Five wrong PINs disable it for that session.' }), form);
  }

  lockCard(sec) {
    const st = h('span', { class: 'save-status', role: 'status' });
    const current = sec.lock_timeout ?? 900;
    const choices = [...LOCK_CHOICES];
    if (!choices.some(([v]) => v === current)) choices.push([current, `${fmt.duration(current)} (custom)`]);
    const id = nextId('lock');
    const sel = h('select', { class: 'input', id }, choices.map(([v, t]) => h('option', { value: String(v), text: t })));
    sel.value = String(current);
    sel.addEventListener('change', async () => {
      const v = Number(sel.value);
      if (await this.save('security', 'lock_timeout', v, st)) this.app.activity.start({ lock_timeout: v });
    });
    return h('section', { class: 'card settings-card' }, h('h2', { class: 'card-title' }, icon('clock'), 'Session lock'),
      h('div', { class: 'setting' },
        h('div', { class: 'setting-text' }, h('label', { for: id, text: 'Lock after inactivity' }), h('div', { class: 'field-help', text: 'Mouse, keyboard, clicks and scrolling count as activity. The lock screen asks for the PIN if one is set, else the password.' })),
        h('div', { class: 'setting-control' }, sel, st)),
      h('div', null, h('button', { type: 'button', class: 'btn', onclick: () => this.app.lockNow() }, icon('lock'), 'Lock now')));
  }

  tokensCard() {
    const body = h('div', null, h('div', { class: 'loading' }, spinner()));
    const name = h('input', { class: 'input', type: 'text', placeholder: 'e.g. deploy script', id: nextId('tok'), maxlength: '64', autocomplete: 'off' });
    const form = h('form', { class: 'field-row token-form', novalidate: true }, field('New token name', name), h('button', { type: 'submit', class: 'btn btn-primary' }, icon('plus'), 'Create token'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      try {
        const t = await this.app.api.createToken(name.value.trim());
        name.value = '';
        this.showToken(t);
        this.loadTokens(body);
      } catch (err) {
        this.app.toasts.error(err);
      }
    });
    this.loadTokens(body);
    return h('section', { class: 'card settings-card' }, h('h2', { class: 'card-title' }, icon('key'), 'API tokens'),
      h('p', { class: 'muted' }, 'For scripts: send ', h('code', { text: 'Authorization: Bearer <token>' }), '. A token cannot change passwords, PINs or tokens.'),
      body, form);
  }

  async loadTokens(body) {
    let tokens;
    try {
      tokens = (await this.app.api.tokens()).tokens || [];
    } catch (err) {
      replace(body, h('div', { class: 'form-error', text: err.message }));
      return;
    }
    if (!tokens.length) {
      replace(body, h('p', { class: 'muted', text: 'No API tokens.' }));
      return;
    }
    replace(body, h('div', { class: 'table-card' }, h('table', { class: 'itable' },
      h('thead', null, h('tr', null, ['Name', 'ID', 'Created', 'Last used', ''].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', null, tokens.map((t) => h('tr', null,
        h('td', { text: t.name || '—' }), h('td', { class: 'mono', text: t.id }),
        h('td', { text: fmt.datetime(t.created) }), h('td', { text: t.last_used ? fmt.ago(t.last_used, this.app.now()) : 'never' }),
        h('td', { class: 'c-actions' }, h('button', { type: 'button', class: 'btn btn-sm danger', onclick: async () => {
          if (!(await this.app.confirm({ title: `Revoke ${t.name || t.id}?`, message: 'Scripts using this token stop working at once.', confirmLabel: 'Revoke', danger: true }))) return;
          try {
            await this.app.api.revokeToken(t.id);
            this.loadTokens(body);
          } catch (err) {
            this.app.toasts.error(err);
          }
        } }, 'Revoke'))))))));
  }

  showToken(t) {
    const out = h('input', { class: 'input mono', readonly: true, value: t.token, 'aria-label': 'The new token' });
    const copy = h('button', { type: 'button', class: 'btn', onclick: async () => {
      out.select();
      try {
        await navigator.clipboard.writeText(t.token);
        setText(copy, 'Copied');
      } catch {
        setText(copy, 'Press Ctrl+C');
      }
    } }, icon('copy'), 'Copy');
    openDialog({
      title: 'New API token', className: 'modal-token',
      body: h('div', { class: 'stack' }, h('p', { text: 'Copy it now: apm shows a token only once.' }), h('div', { class: 'field-row' }, out, copy)),
      actions: [{ label: 'Done', value: true, tone: 'primary' }],
    });
    setTimeout(() => out.select(), 0);
  }

  async refreshSecurity() {
    try {
      this.app.settings.set(await this.app.api.settings());
    } catch {
      /* the toast from the failing call is enough */
    }
    this.renderSecurity();
  }
}

function field(text, input, extra = null) {
  if (!input.id) input.id = nextId('f');
  return h('div', { class: 'field' }, h('label', { for: input.id, text }), input, extra);
}

