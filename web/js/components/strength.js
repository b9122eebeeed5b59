// Password strength meter (an estimate: length x character variety, minus obvious patterns).
import { h, setText } from '../dom.js';

const COMMON = ['password', 'passw0rd', 'qwerty', 'azerty', '123456', '12345678', 'letmein', 'welcome', 'admin', 'iloveyou', 'monkey', 'dragon', 'apm', 'changeme', 'secret'];
const LABELS = ['Too short', 'Weak', 'Fair', 'Good', 'Strong'];

export function passwordScore(pw) {
  if (!pw || pw.length < 8) return 0;
  let pool = 0;
  if (/[a-z]/.test(pw)) pool += 26;
  if (/[A-Z]/.test(pw)) pool += 26;
  if (/[0-9]/.test(pw)) pool += 10;
  if (/[^a-zA-Z0-9]/.test(pw)) pool += 33;
  let bits = pw.length * Math.log2(Math.max(pool, 2));
  const lower = pw.toLowerCase();
  for (const word of COMMON) if (lower.includes(word)) bits -= word.length * 4;
  if (/(.)\1{2,}/.test(pw)) bits -= 10;
  if (/(0123|1234|2345|3456|4567|5678|6789|abcd|bcde|cdef|qwer|asdf)/i.test(pw)) bits -= 10;
  if (new Set(pw).size < pw.length / 2) bits -= 8;
  if (bits < 36) return 1;
  if (bits < 52) return 2;
  if (bits < 70) return 3;
  return 4;
}

export function strengthMeter(input) {
  const bars = [0, 1, 2, 3].map(() => h('span', { class: 'sm-bar' }));
  const label = h('span', { class: 'sm-label', 'aria-live': 'polite' });
  const el = h('div', { class: 'strength', dataset: { score: '0' } }, h('div', { class: 'sm-bars', 'aria-hidden': 'true' }, bars), label);
  const update = () => {
    const score = input.value ? passwordScore(input.value) : -1;
    el.dataset.score = String(Math.max(0, score));
    setText(label, score < 0 ? 'At least 8 characters' : `Strength: ${LABELS[score]}`);
  };
  input.addEventListener('input', update);
  update();
  return el;
}
