// Any other address: say so and offer the way back.
import { h } from '../dom.js';
import { emptyState } from '../components/bits.js';

export class NotFoundView {
  constructor(app, route) {
    this.app = app;
    this.route = route;
    this.el = h('section', { class: 'view' });
  }

  mount() {
    this.app.shell.setHeader('Not found');
    this.el.append(emptyState('warning', 'There is no page here', `Nothing lives at ${this.route.path}.`,
      h('a', { class: 'btn btn-primary', href: '#/workers', text: 'Go to Workers' })));
  }

  destroy() {}
}
