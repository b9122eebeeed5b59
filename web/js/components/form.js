// The worker form, built from the option table (GET /api/v1/schema/worker): one field per
// option, grouped by section, a widget per option type.  Nothing here names an option
// except to decide which sections start open.
//
//   const form = new SchemaForm(schema.options, {mode: 'edit', values: worker.options});
//   const {changes, errors} = form.read();   // only what differs (null = back to default)
import { h, nextId, setText } from '../dom.js';
import { icon } from '../icons.js';
import { humanize } from '../format.js';

const OPEN_SECTIONS = new Set(['Identity', 'Environment']);
const UNIT_HELP = {
  duration: 'Milliseconds, or with a unit: 500ms, 5s, 2m, 1h.',
  size: 'Bytes, or with a unit: 512K, 256M, 1G.',
  list: 'One value per line.',
  intlist: 'Numbers separated by commas.',
  block: 'A JSON object with the block\'s options, e.g. {"url": "https://…"}.',
};

function empty(v) {
  return v == null || v === '' || (Array.isArray(v) && v.length === 0);
}

/** Comparable form of a value (so 2000 == "2000", [] == null for lists). */
function norm(type, v) {
  if (type === 'bool') return v ? 'true' : 'false';
  if (empty(v)) return '';
  if (Array.isArray(v)) return JSON.stringify(v.map(String));
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

class Field {
  constructor(opt, value, mode) {
    this.opt = opt;
    this.type = opt.type;
    this.mode = mode;
    this.id = nextId(`opt-${opt.name}`);
    this.error = h('div', { class: 'field-error', role: 'alert', hidden: true });
    // Shown value: a default shows as the placeholder (an empty field means "the default").
    let shown;
    if (this.type === 'bool') shown = value == null ? !!opt.default : !!value;
    else if (mode === 'edit') shown = norm(this.type, value) === norm(this.type, opt.default) ? null : value;
    else shown = value === undefined ? null : value;
    this.baseline = shown;
    this.input = this.widget(shown);
    const help = [opt.help, UNIT_HELP[this.type] ? ` ${UNIT_HELP[this.type]}` : ''].join('');
    const helpId = `${this.id}-help`;
    this.input.setAttribute('aria-describedby', helpId);
    const code = h('code', { class: 'opt-name', text: opt.name, title: `apm.conf option ${opt.name}` });
    if (this.type === 'bool') {
      this.el = h('div', { class: 'field field-bool', dataset: { option: opt.name } },
        h('div', { class: 'field-head' },
          h('label', { class: 'switch', for: this.id }, this.input,
            h('span', { class: 'switch-track', 'aria-hidden': 'true' }, h('span', { class: 'switch-thumb' })),
            h('span', { class: 'switch-label', text: humanize(opt.name) })),
          code),
        h('div', { class: 'field-help', id: helpId, text: help }), this.error);
    } else {
      this.el = h('div', { class: `field ${this.type === 'list' || this.type === 'block' ? 'field-wide' : ''}`, dataset: { option: opt.name } },
        h('div', { class: 'field-head' },
          h('label', { for: this.id }, humanize(opt.name), opt.required ? h('span', { class: 'req', 'aria-hidden': 'true', text: ' *' }) : null),
          code),
        this.input, h('div', { class: 'field-help', id: helpId, text: help }), this.error);
    }
  }

  /** Set by the user (differs from what the form started with)? */
  changed(value) {
    if (this.type === 'bool') return value !== this.baseline;
    return norm(this.type, value) !== norm(this.type, this.baseline);
  }

  widget(v) {
    const o = this.opt;
    const ph = o.default != null && !empty(o.default) && this.type !== 'bool' ? `default: ${Array.isArray(o.default) ? o.default.join(', ') : typeof o.default === 'object' ? 'set' : o.default}` : '';
    if (this.type === 'bool') {
      return h('input', { type: 'checkbox', role: 'switch', class: 'switch-input', id: this.id, name: o.name, checked: v == null ? !!o.default : !!v });
    }
    if (o.choices && o.choices.length) {
      const sel = h('select', { class: 'input', id: this.id, name: o.name },
        h('option', { value: '', text: o.default != null ? `default (${o.default})` : '—' }),
        o.choices.map((c) => h('option', { value: String(c), text: String(c) })));
      sel.value = v == null ? '' : String(v);
      return sel;
    }
    if (this.type === 'list' || this.type === 'block') {
      const text = this.type === 'block' ? (v ? JSON.stringify(v, null, 2) : '') : (v || []).join('\n');
      const rows = Math.min(8, Math.max(2, text.split('\n').length + 1));
      return h('textarea', { class: 'input mono', id: this.id, name: o.name, rows, spellcheck: 'false', placeholder: this.type === 'block' ? '{ }' : ph, value: text });
    }
    if (this.type === 'int') {
      return h('input', { class: 'input', id: this.id, name: o.name, type: 'number', inputmode: 'numeric', step: '1', min: o.minimum, max: o.maximum, placeholder: ph, value: v == null ? '' : String(v) });
    }
    const text = this.type === 'intlist' ? (v || []).join(', ') : v == null ? '' : String(v);
    const input = h('input', { class: `input ${['exec', 'cmd', 'path'].includes(o.name) || this.type !== 'str' ? 'mono' : ''}`, id: this.id, name: o.name, type: o.secret ? 'password' : 'text', autocomplete: 'off', spellcheck: 'false', placeholder: ph, value: text });
    return input;
  }

  /** [value, error] from the widget; value null = empty. */
  read() {
    const el = this.input;
    if (this.type === 'bool') return [el.checked, null];
    const raw = el.value;
    const text = raw.trim();
    if (this.opt.choices && this.opt.choices.length) return [text || null, null];
    switch (this.type) {
      case 'int': {
        if (!text) return [null, null];
        const n = Number(text);
        if (!Number.isInteger(n)) return [null, 'a whole number'];
        if (this.opt.minimum != null && n < this.opt.minimum) return [null, `at least ${this.opt.minimum}`];
        if (this.opt.maximum != null && n > this.opt.maximum) return [null, `at most ${this.opt.maximum}`];
        return [n, null];
      }
      case 'duration':
      case 'size':
        if (!text) return [null, null];
        return [/^\d+$/.test(text) ? Number(text) : text, null];
      case 'list':
        return [raw.split('\n').map((s) => s.trim()).filter(Boolean), null];
      case 'intlist': {
        if (!text) return [[], null];
        const parts = text.split(/[\s,]+/).filter(Boolean);
        const nums = parts.map(Number);
        if (nums.some((n) => !Number.isInteger(n))) return [null, 'whole numbers separated by commas'];
        return [nums, null];
      }
      case 'block': {
        if (!text) return [null, null];
        try {
          const obj = JSON.parse(text);
          if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return [null, 'a JSON object'];
          return [obj, null];
        } catch (err) {
          return [null, `valid JSON (${err.message})`];
        }
      }
      default:
        return [text || null, null];
    }
  }

  setError(text) {
    this.error.hidden = !text;
    setText(this.error, text || '');
    this.el.classList.toggle('invalid', !!text);
    if (text) this.input.setAttribute('aria-invalid', 'true');
    else this.input.removeAttribute('aria-invalid');
  }
}

export class SchemaForm {
  /** options: schema.options; mode 'new' | 'edit'; values: effective values (edit) or presets (new). */
  constructor(options, { mode = 'new', values = {} } = {}) {
    this.mode = mode;
    this.fields = new Map();
    this.sections = new Map();
    for (const opt of options) {
      const field = new Field(opt, values[opt.name], mode);
      this.fields.set(opt.name, field);
      if (!this.sections.has(opt.section)) this.sections.set(opt.section, []);
      this.sections.get(opt.section).push(field);
    }
    this.banner = h('div', { class: 'form-error', role: 'alert', hidden: true });
    this.groups = new Map();
    const blocks = [];
    for (const [section, fields] of this.sections) {
      const id = nextId('sec');
      const open = OPEN_SECTIONS.has(section);
      const grid = h('div', { class: 'field-grid' }, fields.map((f) => f.el));
      const set = fields.filter((f) => (f.type === 'bool' ? f.baseline !== !!f.opt.default : !empty(f.baseline))).length;
      const details = h('details', { class: 'form-section', open, id },
        h('summary', null, icon('chevron-right', 'summary-chevron'), h('span', { class: 'sec-title', text: section }),
          set ? h('span', { class: 'chip', text: `${set} set` }) : null,
          h('span', { class: 'sec-count', text: `${fields.length} option${fields.length === 1 ? '' : 's'}` })),
        grid);
      this.groups.set(section, details);
      blocks.push(details);
    }
    this.el = h('div', { class: 'schema-form' }, this.banner, blocks);
  }

  field(name) {
    return this.fields.get(name) || null;
  }

  /** {changes, errors}: new -> every value that is set; edit -> what changed (null = back to the default). */
  read() {
    const changes = {};
    const errors = {};
    for (const [name, f] of this.fields) {
      const [value, error] = f.read();
      f.setError(error ? `Must be ${error}.` : '');
      if (error) {
        errors[name] = error;
        continue;
      }
      if (this.mode === 'new') {
        if (f.type === 'bool' ? value !== !!f.opt.default : !empty(value)) changes[name] = value;
      } else if (f.changed(value)) {
        changes[name] = f.type !== 'bool' && empty(value) ? null : value;
      }
    }
    return { changes, errors };
  }

  showBanner(text) {
    this.banner.hidden = !text;
    setText(this.banner, text || '');
  }

  /** Put a server error next to the option it names ("... option namespace: ..."), else on top. */
  showServerError(err) {
    for (const f of this.fields.values()) f.setError('');
    const m = /option (\w+)(?::| )/.exec(err.message || '');
    const f = m ? this.fields.get(m[1]) : null;
    const text = `${err.message}${err.hint ? ` — ${err.hint}` : ''}`;
    if (f) {
      f.setError(text);
      this.reveal(f);
      this.showBanner(`Check ${f.opt.name}: ${err.message}`);
    } else {
      this.showBanner(text);
      this.banner.scrollIntoView({ block: 'nearest' });
    }
  }

  reveal(field) {
    const details = field.el.closest('details');
    if (details) details.open = true;
    field.el.scrollIntoView({ block: 'center' });
    field.input.focus();
  }

  firstError() {
    for (const f of this.fields.values()) if (!f.error.hidden) return f;
    return null;
  }
}
