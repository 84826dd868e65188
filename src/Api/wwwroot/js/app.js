// The dashboard shell: sign-in, the hash router (#/jobs, #/jobs/<id>, #/new, #/hosts) and the
// live-connection indicator. Each view is a module exporting render(root, params) → dispose().

import { session, whoIs, whenUnauthorized, ApiError } from './api.js';
import * as hub from './hub.js';
import { h } from './format.js';
import * as jobsView from './views/jobs.js';
import * as jobView from './views/job.js';
import * as newJobView from './views/new-job.js';
import * as hostsView from './views/hosts.js';

const view = document.getElementById('view');
let dispose = null;

const routes = [
  [/^#\/jobs\/([0-9a-f-]{36})$/, jobView, 'jobs'],
  [/^#\/new$/, newJobView, 'new'],
  [/^#\/hosts$/, hostsView, 'hosts'],
  [/^#\/jobs$/, jobsView, 'jobs'],
];

function route() {
  dispose?.();
  dispose = null;
  view.replaceChildren();
  if (!session.signedIn) { renderSignIn(); return; }
  const hash = location.hash || '#/jobs';
  const match = routes.map(([re, mod, nav]) => [hash.match(re), mod, nav]).find(([m]) => m);
  if (!match) { location.replace('#/jobs'); return; }
  const [m, mod, nav] = match;
  for (const a of document.querySelectorAll('#nav a[data-nav]')) a.classList.toggle('active', a.dataset.nav === nav);
  window.scrollTo(0, 0);   // a hash change keeps the scroll position; a new page starts at the top
  dispose = mod.render(view, ...m.slice(1)) ?? null;
}

function renderSignIn(message) {
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  const input = h('input', { id: 'api-key', type: 'password', autocomplete: 'off', spellcheck: 'false', placeholder: 'lsk_…', required: true });
  const error = h('p.error', { id: 'sign-in-error', role: 'alert', hidden: !message }, message ?? '');
  const button = h('button.primary', { type: 'submit' }, 'Sign in');
  const form = h('form.card.sign-in', {
    onsubmit: async e => {
      e.preventDefault();
      const key = input.value.trim();
      button.disabled = true;
      error.hidden = true;
      try {
        const me = await whoIs(key);
        if (me.role === 'host') throw new Error('This is a trainer host\'s key. Sign in with a tenant or admin key.');
        session.save(key);
        input.value = '';
        await signedIn(me);
        route();
      } catch (err) {
        error.textContent = err instanceof ApiError && err.status === 401
          ? 'That key was refused: it is not a valid API key (or it was revoked).'
          : err.message || String(err);
        error.hidden = false;
        input.select();
      } finally { button.disabled = false; }
    },
  },
  h('h2', 'Sign in'),
  h('p.muted', 'Paste an API key. It is kept in this tab only (session storage) and sent as a header, never in a URL.'),
  h('label', { for: 'api-key' }, 'API key'), input, error, button,
  h('p.muted.small', 'scripts/run.sh prints the admin key on the first run (and keeps it in .data/admin.key); admins create tenant keys with POST /v1/keys.'));
  view.replaceChildren(form);
  input.focus();
}

async function signedIn(me) {
  document.getElementById('who-name').textContent = `${me.tenant} · ${me.role}`;
  document.getElementById('nav').hidden = false;
  document.getElementById('who').hidden = false;
  hub.ensureStarted();
}

function signOut(message) {
  session.clear();
  hub.stop();
  dispose?.();
  dispose = null;
  view.replaceChildren();
  renderSignIn(message);
}

const live = document.getElementById('live');
hub.on('status', status => {
  live.className = `live ${status}`;
  live.title = `live updates: ${status}`;
  live.dataset.status = status;
});
whenUnauthorized(() => signOut('The API no longer accepts this key; sign in again.'));
document.getElementById('sign-out').addEventListener('click', () => signOut());
window.addEventListener('hashchange', route);

if (session.signedIn) {
  try { await signedIn(await whoIs(session.key)); }
  catch (e) {
    if (e instanceof ApiError && e.status === 401) session.clear();
    else await signedIn({ tenant: '(API unreachable)', role: '' });
  }
}
route();
