// Before the app: first-run setup (setup token + password), login, the lock screen,
// and the inactivity tracker that locks the session.
import { h, nextId, setText } from '../dom.js';
import { icon, logo } from '../icons.js';
import { strengthMeter } from '../components/strength.js';

function field(label, input, help = null) {
  const target = input.input || input; // a secret input comes wrapped with its show button
  const id = target.id || nextId('f');
  target.id = id;
  return h('div', { class: 'field' }, h('label', { for: id, text: label }), input, help ? h('div', { class: 'field-help' }, help) : null);
}

function secretInput(attrs) {
  const input = h('input', { class: 'input', type: 'password', spellcheck: 'false', ...attrs });
  const btn = h('button', {
    type: 'button', class: 'icon-btn reveal', 'aria-label': 'Show', title: 'Show',
    onclick: () => {
      const show = input.type === 'password';
      input.type = show ? 'text' : 'password';
      btn.setAttribute('aria-label', show ? 'Hide' : 'Show');
      btn.replaceChildren(icon(show ? 'eye-off' : 'eye'));
    },
  }, icon('eye'));
  const wrap = h('div', { class: 'input-wrap' }, input, btn);
  wrap.input = input;
  return wrap;
}

/** A countdown that keeps the submit button disabled while the server asks us to wait. */
class Waiter {
  constructor(button, note) {
    this.button = button;
    this.note = note;
    this.until = 0;
    this.timer = 0;
  }

  start(seconds, message) {
    this.until = Date.now() + seconds * 1000;
    this.message = message;
    clearInterval(this.timer);
    this.tick();
    this.timer = setInterval(() => this.tick(), 250);
  }

  tick() {
    const left = Math.ceil((this.until - Date.now()) / 1000);
    if (left <= 0) {
      clearInterval(this.timer);
      this.button.disabled = false;
      setText(this.note, '');
      this.note.hidden = true;
      return;
    }
    this.button.disabled = true;
    this.note.hidden = false;
    setText(this.note, `${this.message} Try again in ${left} s.`);
  }

  get waiting() {
    return Date.now() < this.until;
  }
}

function errorText(err) {
  if (err.status === 0) return 'The apm daemon is not answering.';
  return err.message.charAt(0).toUpperCase() + err.message.slice(1) + '.';
}

function waitFrom(err) {
  if (err.status === 429) return err.retryAfter || 1;
  const m = /wait (\d+) s/.exec(err.hint || '');
  return m ? Number(m[1]) : 0;
}

export class AuthScreen {
  /** mode: 'setup' | 'login' | 'offline' */
  constructor(app, mode, status = {}, message = '') {
    this.app = app;
    this.mode = mode;
    this.status = status;
    this.error = h('div', { class: 'form-error', role: 'alert', hidden: true });
    this.wait = h('div', { class: 'form-wait', role: 'status', hidden: true });
    this.submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' });
    this.waiter = new Waiter(this.submit, this.wait);
    const info = message ? h('div', { class: 'form-info', role: 'status', text: message }) : null;
    let title;
    let lead;
    let fields;
    if (mode === 'setup') {
      title = 'Welcome to apm';
      lead = 'Claim this dashboard: enter the one-time setup token, then choose a password.';
      this.token = h('input', { class: 'input mono token-input', name: 'setup_token', autocomplete: 'off', spellcheck: 'false', placeholder: 'XXXXX-XXXXX-XXXXX-XXXXX', required: true, autocapitalize: 'characters' });
      this.pw = secretInput({ name: 'new-password', autocomplete: 'new-password', required: true, minlength: '8' });
      this.pw2 = secretInput({ name: 'confirm-password', autocomplete: 'new-password', required: true });
      fields = [
        field('Setup token', this.token, [h('code', { text: 'apm gui' }), ' on the server prints it; the daemon log has one too. Single use, valid 1 hour.']),
        field('Password', this.pw, strengthMeter(this.pw.input)),
        field('Confirm password', this.pw2),
      ];
      this.submit.append('Set password and continue');
    } else if (mode === 'login') {
      title = 'Sign in';
      lead = 'Enter the dashboard password.';
      this.pw = secretInput({ name: 'password', autocomplete: 'current-password', required: true });
      fields = [field('Password', this.pw)];
      this.submit.append(icon('unlock'), 'Sign in');
    } else {
      title = 'Cannot reach apm';
      lead = 'The daemon is not answering. Check that it runs (`apm status`) and that this address is right.';
      fields = [];
      this.submit.append(icon('reload'), 'Try again');
    }
    this.form = h('form', { class: 'auth-form', novalidate: true }, info, fields, this.error, this.wait, this.submit);
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.send();
    });
    this.el = h('div', { class: 'auth' },
      h('div', { class: 'auth-card' },
        h('div', { class: 'auth-brand' }, logo('logo logo-lg'), h('span', { text: 'apm' })),
        h('h1', { text: title }),
        h('p', { class: 'auth-lead', text: lead }),
        this.form),
      h('p', { class: 'auth-foot', text: 'apm process manager' }));
  }

  focus() {
    const first = this.token || (this.pw && this.pw.input) || this.submit;
    setTimeout(() => first.focus(), 0);
  }

  showError(text) {
    this.error.hidden = !text;
    setText(this.error, text || '');
  }

  async send() {
    if (this.waiter.waiting) return;
    this.showError('');
    const api = this.app.api;
    try {
      this.submit.disabled = true;
      if (this.mode === 'offline') {
        await this.app.start();
        return;
      }
      if (this.mode === 'setup') {
        const token = this.token.value.trim();
        const pw = this.pw.input.value;
        if (!token) return this.fail('Enter the setup token that `apm gui` prints.', this.token);
        if (pw.length < 8) return this.fail('The password needs at least 8 characters.', this.pw.input);
        if (pw !== this.pw2.input.value) return this.fail('The two passwords differ.', this.pw2.input);
        await api.setup(token, pw);
      } else {
        const pw = this.pw.input.value;
        if (!pw) return this.fail('Enter the password.', this.pw.input);
        await api.login(pw);
      }
      const status = await api.authStatus();
      this.app.enter(status);
    } catch (err) {
      if (err.status === 409 && this.mode === 'setup') {
        this.app.start();
        return;
      }
      this.submit.disabled = false;
      const wait = waitFrom(err);
      this.showError(errorText(err) + (err.status === 429 ? '' : err.hint && !wait ? ` ${err.hint}.` : ''));
      if (wait) this.waiter.start(wait, err.status === 429 ? 'Too many failed attempts.' : 'Wrong password.');
      const target = this.mode === 'setup' && err.kind === 'wrong_secret' ? this.token : this.pw && this.pw.input;
      if (target) {
        target.select();
        target.focus();
      }
    } finally {
      if (!this.waiter.waiting) this.submit.disabled = false;
    }
  }

  fail(text, input) {
    this.showError(text);
    this.submit.disabled = false;
    if (input) input.focus();
  }
}

export class LockScreen {
  constructor(app, status) {
    this.app = app;
    this.status = status;
    const session = status.session || {};
    this.usePin = !!(status.has_pin && session.pin_allowed !== false);
    this.error = h('div', { class: 'form-error', role: 'alert', hidden: true });
    this.wait = h('div', { class: 'form-wait', role: 'status', hidden: true });
    this.submit = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, icon('unlock'), 'Unlock');
    this.waiter = new Waiter(this.submit, this.wait);
    this.fields = h('div');
    this.switcher = h('button', { type: 'button', class: 'link-btn', onclick: () => this.toggleMode() });
    this.form = h('form', { class: 'auth-form', novalidate: true }, this.fields, this.error, this.wait, this.submit,
      h('div', { class: 'lock-links' }, this.switcher,
        h('button', { type: 'button', class: 'link-btn', onclick: () => app.logout() }, 'Log out')));
    this.form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.send();
    });
    this.lead = h('p', { class: 'auth-lead' });
    this.el = h('div', { class: 'auth lockscreen', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': 'lock-title' },
      h('div', { class: 'auth-card' },
        h('div', { class: 'lock-icon' }, icon('lock')),
        h('h1', { id: 'lock-title', text: 'Dashboard locked' }),
        this.lead, this.form));
    this.render();
  }

  render() {
    if (this.usePin) {
      this.input = h('input', { class: 'input pin-input', type: 'password', inputmode: 'numeric', autocomplete: 'off', maxlength: '6', pattern: '[0-9]*', name: 'pin', 'aria-label': 'PIN' });
      this.fields.replaceChildren(field('PIN', this.input));
      setText(this.lead, 'Enter your PIN to continue.');
      setText(this.switcher, 'Use the password instead');
    } else {
      const wrap = secretInput({ name: 'password', autocomplete: 'current-password' });
      this.input = wrap.input;
      this.fields.replaceChildren(field('Password', wrap));
      setText(this.lead, 'Enter your password to continue.');
      setText(this.switcher, 'Use the PIN instead');
    }
    this.switcher.hidden = !this.status.has_pin || (this.status.session && this.status.session.pin_allowed === false && !this.usePin);
  }

  toggleMode() {
    this.usePin = !this.usePin;
    this.error.hidden = true;
    this.render();
    this.focus();
  }

  focus() {
    setTimeout(() => this.input.focus(), 0);
  }

  async send() {
    if (this.waiter.waiting) return;
    const value = this.input.value;
    if (!value) return;
    this.error.hidden = true;
    this.submit.disabled = true;
    try {
      await this.app.api.unlock(this.usePin ? { pin: value } : { password: value });
      const status = await this.app.api.authStatus();
      this.app.unlocked(status);
    } catch (err) {
      this.submit.disabled = false;
      if (err.status === 401) {
        this.app.sessionGone('Your session ended. Log in again.');
        return;
      }
      this.error.hidden = false;
      setText(this.error, errorText(err));
      const wait = waitFrom(err);
      if (wait) this.waiter.start(wait, err.status === 429 ? 'Too many failed attempts.' : '');
      if (this.usePin && /disabled/.test(err.message)) {
        this.status = { ...this.status, session: { ...(this.status.session || {}), pin_allowed: false } };
        this.usePin = false;
        this.render();
      }
      this.input.value = '';
      this.focus();
    }
  }
}

/**
 * Inactivity lock: user input postpones the server's lock (POST /auth/activity, at most
 * every lock_timeout/4 s); after lock_timeout s without input the page locks itself.
 */
export class Activity {
  constructor(app) {
    this.app = app;
    this.timeout = 0;
    this.last = Date.now();
    this.pinged = 0;
    this.timer = 0;
    this.events = ['pointerdown', 'keydown', 'wheel', 'touchstart', 'mousemove', 'scroll'];
    this.onInput = () => this.touch();
  }

  start(session) {
    this.stop();
    this.timeout = (session && session.lock_timeout) || 0;
    this.last = Date.now();
    this.pinged = Date.now();
    if (!this.timeout) return;
    for (const e of this.events) window.addEventListener(e, this.onInput, { passive: true, capture: true });
    this.timer = setInterval(() => this.check(), 1000);
  }

  stop() {
    clearInterval(this.timer);
    for (const e of this.events) window.removeEventListener(e, this.onInput, { capture: true });
  }

  touch() {
    const now = Date.now();
    this.last = now;
    const every = Math.min(30, Math.max(1, this.timeout / 4)) * 1000;
    if (now - this.pinged > every) {
      this.pinged = now;
      this.app.api.activity().catch(() => {});
    }
  }

  check() {
    if (this.timeout && Date.now() - this.last >= this.timeout * 1000) {
      this.stop();
      this.app.lockNow().catch(() => this.app.showLock());
    }
  }
}
