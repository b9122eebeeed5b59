// Settings → Log Alerts: regex patterns over every worker's output (GET/PUT /logs/alerts).
// The list replaces as a whole on the daemon, so every change (add, edit, toggle, delete)
// sends the full list; the daemon validates all of it and keeps the old list on an error.
// Patterns are Python regexes: the browser's RegExp only gives a hint, the daemon's 400
// answer is the authority and shows next to the pattern field.
import { h, listen, nextId, replace, setText } from '../dom.js';
import { icon } from '../icons.js';
import * as fmt from '../format.js';
import { switchInput } from '../components/bits.js';
import { openDialog } from '../components/modal.js';

export const CHANNELS = [['app', 'In-app'], ['telegram', 'Telegram'], ['both', 'Both']];
const UNITS = [['s', 'seconds', 1000], ['min', 'minutes', 60_000], ['h', 'hours', 3_600_000]];
const DEFAULT_COOLDOWN_MS = 60_000;
const TELEGRAM_NOTE = 'Telegram delivery needs the Telegram settings, which arrive in a later version of apm. The choice is stored now; until then these alerts show in the app.';

/** A Python `re` pattern as a browser RegExp, as far as the two agree: {re} or {error}.
 *  Translates (?P<n>…), (?P=n), \A, \Z and leading inline flags; the daemon has the last word. */
export function browserRegex(pattern, ignoreCase = false) {
  let src = String(pattern);
  let flags = 'm';
  const lead = /^\(\?([aiLmsux]+)\)/.exec(src);
  if (lead) {
    src = src.slice(lead[0].length);
    if (lead[1].includes('i')) flags += 'i';
    if (lead[1].includes('s')) flags += 's';
  }
  if (ignoreCase && !flags.includes('i')) flags += 'i';
  src = src.replace(/\(\?P<(\w+)>/g, '(?<$1>').replace(/\(\?P=(\w+)\)/g, '\\k<$1>').replace(/\\A/g, '^').replace(/\\Z/g, '$');
  try {
    return { re: new RegExp(src, flags) };
  } catch (err) {
    return { error: String(err.message || err).replace(/^Invalid regular expression: /, '') };
  }
}

/** cooldown_ms -> [amount, unit] in the largest unit that divides it evenly. */
export function splitCooldown(ms) {
  const n = Number(ms);
  if (!Number.isFinite(n) || n <= 0) return [0, 's'];
  for (const [unit, , size] of [...UNITS].reverse()) if (n % size === 0) return [n / size, unit];
  return [n / 1000, 's'];
}

export function cooldownText(ms) {
  const [n, unit] = splitCooldown(ms);
  if (!n) return 'no cooldown';
  const name = UNITS.find(([u]) => u === unit)[1];
  return `${n} ${n === 1 ? name.slice(0, -1) : name}`;
}

function channelLabel(value) {
  const c = CHANNELS.find(([v]) => v === value);
  return c ? c[1] : value;
}

/** `text` with the first match of `re` wrapped in <mark> (as DOM nodes, never markup). */
function highlighted(text, re) {
  const m = re ? re.exec(text) : null;
  if (!m) return [text];
  const end = m.index + Math.max(1, m[0].length);
  return [text.slice(0, m.index), h('mark', { text: text.slice(m.index, end) }), text.slice(end)];
}

export class AlertsPanel {
  constructor(app) {
    this.app = app;
    this.alerts = [];
    this.sample = '';
    this.offs = [];
    this.list = h('div', { class: 'alert-list', role: 'list', 'aria-label': 'Log alerts' });
    this.count = h('span', { class: 'chip' });
    this.recent = h('ol', { class: 'alert-recent' });
    this.el = h('div', { class: 'settings-stack' });
  }

  async mount() {
    replace(this.el, h('div', { class: 'loading' }, h('span', { class: 'spinner' }), ' Loading the log alerts…'));
    try {
      this.alerts = (await this.app.api.alerts()).alerts || [];
    } catch (err) {
      replace(this.el, h('div', { class: 'form-error', role: 'alert', text: `Cannot load the log alerts: ${err.message}` }));
      return;
    }
    this.offs.push(listen(this.app.notices, 'change', () => this.renderRecent()));
    replace(this.el, this.listCard(), this.testCard(), this.recentCard());
    this.renderList();
    this.renderRecent();
  }

  destroy() {
    for (const off of this.offs) off();
    this.offs = [];
  }

  // ---------------------------------------------------------------- cards
  listCard() {
    const add = h('button', { type: 'button', class: 'btn btn-primary btn-sm', onclick: () => this.edit(null) }, icon('plus'), 'New alert');
    return h('section', { class: 'card settings-card' },
      h('div', { class: 'card-title' }, icon('bell'), 'Log alerts', this.count, add),
      h('p', { class: 'muted' }, 'When a line of any worker\'s output matches a pattern, apm raises an alert in the ',
        h('button', { type: 'button', class: 'link-btn', onclick: () => this.app.toggleBell() }, 'notifications bell'),
        '. A cooldown stops one noisy worker from raising an alert storm.'),
      this.list);
  }

  testCard() {
    const id = nextId('alert-sample');
    const box = h('textarea', { class: 'input mono', id, rows: '2', spellcheck: 'false', placeholder: 'e.g. 2026-01-02 12:00:01 ERROR payment failed: timeout', value: this.sample });
    box.addEventListener('input', () => {
      this.sample = box.value;
      this.renderList();
    });
    return h('section', { class: 'card settings-card' },
      h('h2', { class: 'card-title' }, icon('search'), 'Test a line'),
      h('div', { class: 'field' },
        h('label', { for: id, text: 'Sample log line' }),
        box,
        h('div', { class: 'field-help', text: 'Each alert above shows whether it matches. Checked by the browser, whose regular expressions differ from Python\'s in places: a hint, not a promise.' })));
  }

  recentCard() {
    return h('section', { class: 'card settings-card' },
      h('div', { class: 'card-title' }, icon('activity'), 'Recent alerts',
        h('button', { type: 'button', class: 'btn btn-sm btn-ghost push', onclick: () => this.app.toggleBell() }, icon('bell'), 'Open notifications')),
      this.recent);
  }

  renderRecent() {
    const items = this.app.notices.items.filter((n) => n.kind === 'alert').slice(0, 5);
    if (!items.length) {
      replace(this.recent, h('li', { class: 'muted small', text: 'No alert has fired since the daemon started.' }));
      return;
    }
    const now = this.app.now();
    replace(this.recent, items.map((n) => h('li', { class: 'alert-recent-item' },
      h('span', { class: 'alert-recent-time', title: fmt.datetime(n.ts), text: fmt.ago(n.ts, now) }),
      n.worker ? h('a', { href: `#/workers/${encodeURIComponent(n.worker)}`, text: n.worker }) : null,
      h('span', { class: 'alert-recent-msg', text: n.message }))));
  }

  renderList() {
    setText(this.count, fmt.plural(this.alerts.length, 'alert'));
    if (!this.alerts.length) {
      replace(this.list, h('div', { class: 'alert-empty' },
        h('p', { text: 'No log alerts yet. A common start: ERROR|CRITICAL|Traceback|OOM.' }),
        h('button', { type: 'button', class: 'btn btn-sm', onclick: () => this.edit(null, { name: 'errors', pattern: 'ERROR|CRITICAL|Traceback|OOM' }) }, icon('plus'), 'Add this one')));
      return;
    }
    replace(this.list, this.alerts.map((a, i) => this.row(a, i)));
  }

  row(a, i) {
    const toggle = switchInput({ label: a.enabled ? 'On' : 'Off', checked: a.enabled !== false, onchange: (on) => this.setEnabled(i, on, toggle) });
    toggle.input.setAttribute('aria-label', `Alert ${a.name} enabled`);
    toggle.classList.add('alert-toggle');
    const meta = [
      h('span', { class: 'chip chip-icon', title: 'Cooldown per worker' }, icon('clock'), cooldownText(a.cooldown_ms)),
      a.ignore_case ? h('span', { class: 'chip', text: 'ignore case' }) : null,
      h('span', { class: `chip ${a.channel === 'app' ? '' : 'chip-accent'}`, text: channelLabel(a.channel || 'app') }),
    ];
    let test = null;
    if (this.sample.trim()) {
      const { re, error } = browserRegex(a.pattern, a.ignore_case);
      const hit = re ? re.test(this.sample) : false;
      test = h('span', { class: `pill ${error ? 'tone-warn' : hit ? 'tone-ok' : 'tone-muted'} alert-test`, title: error || '' },
        h('span', { class: 'dot' }), error ? 'cannot check here' : hit ? 'matches' : 'no match');
    }
    return h('div', { class: `alert-row ${a.enabled === false ? 'off' : ''}`, role: 'listitem', dataset: { name: a.name } },
      toggle,
      h('div', { class: 'alert-main' },
        h('div', { class: 'alert-name', text: a.name }),
        h('code', { class: 'alert-pattern', text: a.pattern }),
        h('div', { class: 'alert-meta' }, meta, test)),
      h('div', { class: 'alert-actions' },
        h('button', { type: 'button', class: 'icon-btn', 'aria-label': `Edit alert ${a.name}`, title: 'Edit', onclick: () => this.edit(i) }, icon('edit')),
        h('button', { type: 'button', class: 'icon-btn danger', 'aria-label': `Delete alert ${a.name}`, title: 'Delete', onclick: () => this.remove(i) }, icon('trash'))));
  }

  // ---------------------------------------------------------------- changes
  /** Send the whole list; on success keep what the daemon answered. Throws the ApiError. */
  async commit(next) {
    const data = await this.app.api.setAlerts(next);
    this.alerts = data.alerts || next;
    this.renderList();
  }

  async setEnabled(i, on, toggle) {
    const a = this.alerts[i];
    toggle.input.disabled = true;
    try {
      await this.commit(this.alerts.map((x, j) => (j === i ? { ...x, enabled: on } : x)));
      this.app.toasts.show(`Alert ${a.name} ${on ? 'enabled' : 'disabled'}`, { tone: 'ok' });
    } catch (err) {
      toggle.input.checked = !on;
      toggle.input.disabled = false;
      this.app.toasts.error(err, `Cannot ${on ? 'enable' : 'disable'} alert ${a.name}`);
    }
  }

  async remove(i) {
    const a = this.alerts[i];
    const ok = await this.app.confirm({ title: `Delete alert ${a.name}?`, message: `Lines matching ${a.pattern} no longer raise an alert.`, detail: 'To pause it instead, switch it off.', confirmLabel: 'Delete alert', danger: true });
    if (!ok) return;
    try {
      await this.commit(this.alerts.filter((_, j) => j !== i));
      this.app.toasts.show(`Alert ${a.name} deleted`, { tone: 'ok' });
    } catch (err) {
      this.app.toasts.error(err, `Cannot delete alert ${a.name}`);
    }
  }

  /** The add/edit dialog: `index` null adds (prefilled from `preset`). */
  edit(index, preset = {}) {
    const old = index == null ? null : this.alerts[index];
    const a = { name: '', pattern: '', cooldown_ms: DEFAULT_COOLDOWN_MS, enabled: true, ignore_case: false, channel: 'app', ...(old || preset) };
    const f = new AlertForm(a, this.sample);
    const dlg = openDialog({
      title: old ? `Edit alert ${old.name}` : 'New log alert',
      body: f.el,
      wide: true,
      className: 'modal-alert',
      actions: [{ label: 'Cancel', value: null, tone: 'ghost' }, { label: old ? 'Save alert' : 'Add alert', submit: true, tone: 'primary', icon: 'check' }],
      onSubmit: async () => {
        const spec = f.read();
        if (!spec) return undefined;
        const clash = this.alerts.some((x, j) => j !== index && x.name === (spec.name || spec.pattern));
        if (clash) {
          f.fail('name', `An alert named “${spec.name || spec.pattern}” exists already: pick another name.`);
          return undefined;
        }
        const next = index == null ? [...this.alerts, spec] : this.alerts.map((x, j) => (j === index ? spec : x));
        f.busy(true);
        try {
          await this.commit(next);
        } catch (err) {
          f.busy(false);
          f.serverError(err);
          return undefined;
        }
        this.app.toasts.show(`Alert ${spec.name || spec.pattern} ${old ? 'saved' : 'added'}`, { tone: 'ok' });
        return true;
      },
    });
    setTimeout(() => (old || preset.pattern ? f.pattern : f.name).focus(), 0);
    return dlg;
  }
}

/** The fields of one alert, with the live pattern hint and a sample-line check. */
class AlertForm {
  constructor(a, sample) {
    const id = (k) => nextId(`alert-${k}`);
    this.name = h('input', { class: 'input', id: id('name'), maxlength: '100', autocomplete: 'off', spellcheck: 'false', value: a.name, placeholder: 'e.g. errors (defaults to the pattern)' });
    this.pattern = h('input', { class: 'input mono', id: id('pattern'), autocomplete: 'off', spellcheck: 'false', value: a.pattern, placeholder: 'ERROR|CRITICAL|OOM', 'aria-describedby': '' });
    const [amount, unit] = splitCooldown(a.cooldown_ms);
    this.amount = h('input', { class: 'input input-num', id: id('cooldown'), type: 'text', value: String(amount), inputmode: 'decimal', autocomplete: 'off' });
    this.unit = h('select', { class: 'input alert-unit', 'aria-label': 'Cooldown unit' }, UNITS.map(([u, label]) => h('option', { value: u, text: label })));
    this.unit.value = unit;
    this.ignoreCase = switchInput({ label: 'Ignore case', checked: !!a.ignore_case, help: 'error, Error and ERROR all match.' });
    this.enabled = switchInput({ label: 'Enabled', checked: a.enabled !== false, help: 'Switched off, the alert is kept but never fires.' });
    // A channel this page does not know (set through the API) stays as it is unless changed.
    const channels = CHANNELS.some(([v]) => v === a.channel) || !a.channel ? CHANNELS : [...CHANNELS, [a.channel, a.channel]];
    this.channel = h('select', { class: 'input', id: id('channel') }, channels.map(([v, label]) => h('option', { value: v, text: label })));
    this.channel.value = a.channel || 'app';
    this.sample = h('textarea', { class: 'input mono', id: id('sample'), rows: '2', spellcheck: 'false', value: sample, placeholder: 'Paste a log line to try the pattern on' });

    this.hint = h('div', { class: 'field-help pattern-hint', id: id('hint'), role: 'status' });
    this.pattern.setAttribute('aria-describedby', this.hint.id);
    this.errors = {};
    const errorFor = (k) => (this.errors[k] = h('div', { class: 'field-error', role: 'alert', id: id(`${k}-err`), hidden: true }));
    this.result = h('div', { class: 'sample-result', role: 'status' });
    this.telegram = h('div', { class: 'field-help telegram-note', text: TELEGRAM_NOTE });
    this.msg = h('div', { class: 'form-msg err', role: 'alert' });

    const field = (label, input, ...extra) => h('div', { class: 'field' }, h('label', { for: input.id || input.labelFor, text: label }), input, ...extra);
    const cooldown = h('div', { class: 'cooldown-row' }, this.amount, this.unit);
    cooldown.labelFor = this.amount.id;
    this.fields = {
      name: field('Name', this.name, errorFor('name')),
      pattern: field('Pattern', this.pattern, this.hint, errorFor('pattern')),
      cooldown: field('Cooldown', cooldown, h('div', { class: 'field-help', text: 'After firing for a worker, the alert stays quiet for that worker this long. 0 fires on every match.' }), errorFor('cooldown')),
      channel: field('Channel', this.channel, this.telegram),
    };
    this.el = h('div', { class: 'alert-form stack' },
      h('div', { class: 'alert-grid' }, this.fields.name, this.fields.pattern, this.fields.cooldown, this.fields.channel),
      h('div', { class: 'alert-switches' }, this.ignoreCase, this.enabled),
      h('div', { class: 'field alert-sample' }, h('label', { for: this.sample.id, text: 'Try it on a line' }), this.sample, this.result),
      this.msg);

    const check = () => this.check();
    this.pattern.addEventListener('input', () => { this.clear('pattern'); check(); });
    this.name.addEventListener('input', () => this.clear('name'));
    this.amount.addEventListener('input', () => this.clear('cooldown'));
    this.ignoreCase.input.addEventListener('change', check);
    this.sample.addEventListener('input', check);
    this.channel.addEventListener('change', () => this.showChannel());
    this.showChannel();
    check();
  }

  showChannel() {
    this.telegram.className = this.channel.value === 'app' ? 'field-help telegram-note' : 'form-info small telegram-note';
  }

  /** The live hint under the pattern and the sample result. */
  check() {
    const pattern = this.pattern.value;
    if (!pattern) {
      this.hint.className = 'field-help pattern-hint';
      setText(this.hint, 'A Python regular expression, matched against each line of output (stdout and stderr).');
      replace(this.result);
      return;
    }
    const { re, error } = browserRegex(pattern, this.ignoreCase.input.checked);
    this.hint.className = `field-help pattern-hint ${error ? 'warn' : 'ok'}`;
    setText(this.hint, error
      ? `The browser cannot read this pattern (${error}). Python's syntax differs in places: the daemon checks it when you save.`
      : 'Looks valid to the browser. The daemon checks it (Python syntax) when you save.');
    const line = this.sample.value;
    if (!line.trim() || !re) {
      replace(this.result);
      return;
    }
    const hits = line.split('\n').filter((l) => re.test(l));
    if (!hits.length) {
      this.result.className = 'sample-result miss';
      replace(this.result, icon('x'), 'No match');
      return;
    }
    this.result.className = 'sample-result hit';
    replace(this.result, icon('check'), h('span', { text: hits.length > 1 ? `${hits.length} lines match: ` : 'Matches: ' }),
      h('code', { class: 'sample-line' }, highlighted(hits[0], re)));
  }

  clear(key) {
    const err = this.errors[key];
    if (err) { err.hidden = true; setText(err, ''); }
    this.fields[key].classList.remove('invalid');
    if (key === 'pattern') this.hint.hidden = false;
    setText(this.msg, '');
  }

  fail(key, text) {
    const err = this.errors[key];
    if (!err) { setText(this.msg, text); return; }
    if (key === 'pattern') this.hint.hidden = true; // the daemon's word replaces the browser's guess
    err.hidden = false;
    setText(err, text);
    this.fields[key].classList.add('invalid');
    (key === 'cooldown' ? this.amount : this[key]).focus();
  }

  /** The daemon's 400 answer, next to the field it is about. */
  serverError(err) {
    const text = `${err.message}${err.hint ? ` — ${err.hint}` : ''}`;
    const m = err.message || '';
    if (/\bcooldown/i.test(m)) this.fail('cooldown', text);
    else if (/\bnames?\b/i.test(m) && !/pattern .* is not a valid/i.test(m)) this.fail('name', text);
    else if (/pattern/i.test(m)) this.fail('pattern', text);
    else setText(this.msg, text);
  }

  busy(on) {
    for (const b of this.el.closest('form').querySelectorAll('button')) b.disabled = on;
  }

  /** The alert object, or null after marking what is wrong. */
  read() {
    for (const k of Object.keys(this.errors)) this.clear(k);
    const pattern = this.pattern.value;
    if (!pattern.trim()) {
      this.fail('pattern', 'The pattern is empty: enter a regular expression, e.g. ERROR|OOM.');
      return null;
    }
    const raw = this.amount.value.trim();
    const amount = raw === '' ? 0 : Number(raw);
    if (!Number.isFinite(amount) || amount < 0) {
      this.fail('cooldown', `The cooldown “${raw}” is not a number of ${this.unit.selectedOptions[0].text} ≥ 0: enter e.g. 30, or 0 for none.`);
      return null;
    }
    const size = UNITS.find(([u]) => u === this.unit.value)[2];
    return {
      name: this.name.value.trim() || pattern,
      pattern,
      cooldown_ms: Math.round(amount * size),
      enabled: this.enabled.input.checked,
      ignore_case: this.ignoreCase.input.checked,
      channel: this.channel.value,
    };
  }
}
