// New worker / Edit worker: the form comes from the option table (GET /schema/worker).
import { h, listen } from '../dom.js';
import { icon } from '../icons.js';
import { SchemaForm } from '../components/form.js';
import { spinner, switchInput } from '../components/bits.js';

let schemaCache = null;

export async function workerSchema(api) {
  if (!schemaCache) schemaCache = api.workerSchema().then((s) => s.options).catch((err) => { schemaCache = null; throw err; });
  return schemaCache;
}

export class EditorView {
  constructor(app, route) {
    this.app = app;
    this.route = route;
    this.mode = route.name === 'edit' ? 'edit' : 'new';
    this.name = route.arg;
    this.offs = [];
    this.body = h('div', { class: 'editor-body' }, h('div', { class: 'loading' }, spinner(), ' Loading the options…'));
    this.el = h('section', { class: 'view view-editor' }, this.body);
  }

  async mount() {
    const app = this.app;
    app.shell.setHeader(this.mode === 'new' ? 'New worker' : `Edit ${this.name}`, this.mode === 'new' ? 'Every option of apm.conf, from the option table' : 'Only changed options are saved');
    let options;
    let worker = null;
    try {
      [options, worker] = await Promise.all([workerSchema(app.api), this.mode === 'edit' ? app.api.worker(this.name) : null]);
    } catch (err) {
      this.body.replaceChildren(h('div', { class: 'form-error', role: 'alert', text: `${err.message}${err.hint ? ` — ${err.hint}` : ''}` }));
      return;
    }
    if (!this.el.isConnected) return;
    const presets = {};
    if (this.mode === 'new') {
      const ns = app.settings.get('general', 'default_namespace', '');
      if (ns) presets.namespace = ns;
    }
    this.worker = worker;
    this.form = new SchemaForm(options, { mode: this.mode, values: this.mode === 'edit' ? worker.options : presets });
    this.restart = this.mode === 'edit' ? switchInput({ label: 'Restart to apply', checked: true, help: 'Off: the change is saved and applies at the next start.' }) : null;
    this.save = h('button', { type: 'submit', class: 'btn btn-primary' }, icon(this.mode === 'new' ? 'play' : 'save'), this.mode === 'new' ? 'Create and start' : 'Save changes');
    const cancel = h('button', { type: 'button', class: 'btn btn-ghost', text: 'Cancel', onclick: () => this.leave() });
    const nav = h('nav', { class: 'editor-nav', 'aria-label': 'Sections' }, [...this.form.groups.entries()].map(([section, details]) => h('button', {
      type: 'button', class: 'editor-nav-link', text: section,
      onclick: () => { details.open = true; details.scrollIntoView({ block: 'start', behavior: 'smooth' }); },
    })));
    const formEl = h('form', { class: 'editor-form', novalidate: true, 'aria-label': this.mode === 'new' ? 'New worker' : `Edit ${this.name}` },
      this.form.el,
      h('div', { class: 'editor-bar' }, this.restart, h('span', { class: 'grow' }), cancel, this.save));
    formEl.addEventListener('submit', (ev) => { ev.preventDefault(); this.submit(); });
    this.offs.push(listen(formEl, 'keydown', (ev) => {
      if (ev.key === 'Enter' && (ev.ctrlKey || ev.metaKey)) { ev.preventDefault(); this.submit(); }
    }));
    this.body.replaceChildren(h('div', { class: 'editor-layout' }, nav, formEl));
    const first = this.form.field(this.mode === 'new' ? 'name' : 'exec');
    if (first) first.input.focus();
  }

  destroy() {
    for (const off of this.offs) off();
  }

  leave() {
    if (this.mode === 'edit') this.app.go(`/workers/${encodeURIComponent(this.name)}`);
    else if (window.history.length > 1) window.history.back();
    else this.app.go('/workers');
  }

  async submit() {
    if (this.busy) return;
    const { changes, errors } = this.form.read();
    if (Object.keys(errors).length) {
      const f = this.form.firstError();
      this.form.showBanner('Some values need fixing.');
      if (f) this.form.reveal(f);
      return;
    }
    this.form.showBanner('');
    this.busy = true;
    this.save.disabled = true;
    const api = this.app.api;
    try {
      if (this.mode === 'new') {
        if (!changes.exec && !changes.cmd) {
          const f = this.form.field('exec');
          f.setError('Give the program to run (exec), or a full command line (cmd).');
          this.form.reveal(f);
          return;
        }
        const result = await api.createWorker(changes);
        this.app.workers.upsert([result]);
        this.app.toasts.show(`${result.name} created`, { tone: 'ok' });
        this.app.go(`/workers/${encodeURIComponent(result.name)}`);
      } else {
        let name = this.name;
        if ('name' in changes) {
          const next = changes.name;
          delete changes.name;
          if (next && next !== name) {
            await api.renameWorker(name, next);
            name = next;
          }
        }
        if (Object.keys(changes).length) {
          const result = await api.updateWorker(name, changes, this.restart.input.checked);
          if (result && result.name) this.app.workers.upsert([result]);
          this.app.toasts.show(`${name} saved`, { tone: 'ok' });
        } else if (name === this.name) {
          this.app.toasts.show('Nothing changed', { tone: 'info' });
        } else {
          this.app.toasts.show(`${this.name} renamed to ${name}`, { tone: 'ok' });
        }
        this.app.go(`/workers/${encodeURIComponent(name)}`);
      }
    } catch (err) {
      this.form.showServerError(err);
    } finally {
      this.busy = false;
      this.save.disabled = false;
    }
  }
}
