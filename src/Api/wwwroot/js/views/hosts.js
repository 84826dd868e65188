// Hosts: every trainer host with its slots and the job that holds each (job ids are shown for this
// tenant's jobs only; another tenant's is "in use"). Reloaded when a job changes state (slots are
// bound and released then) and every few seconds for heartbeats.

import { hosts } from '../api.js';
import * as hub from '../hub.js';
import { h, shortId, bytes, ago, time } from '../format.js';

export function render(root) {
  const list = h('div.hosts', { id: 'hosts' });
  const error = h('p.error', { role: 'alert', hidden: true });
  root.replaceChildren(h('div.page-head', h('h2', 'Trainer hosts'),
    h('p.muted.small', 'A job takes sequence_parallel_size × data_parallel_size slots, all at once: on one host, '
      + 'or across hosts started with --mpi-host when no host has room.')), error, list);
  let timer = null;

  async function load() {
    try {
      const all = await hosts.list();
      error.hidden = true;
      list.replaceChildren(...(all.length ? all.map(host) : [h('div.card.empty', 'No trainer host has registered. Start one: trainer host --api <url> --token <host key> --slots 4')]));
    } catch (e) { error.textContent = `Could not load hosts: ${e.message}`; error.hidden = false; }
  }

  function host(x) {
    const used = x.total_slots - x.free_slots;
    // Another tenant's job is not named: its slots count as used but show no job.
    const others = used - x.slots.filter(s => s.job_id).length;
    return h('section.card.host', { dataset: { hostId: x.id, state: x.state } },
      h('div.host-head',
        h('h3', x.name, ' ', h(`span.badge.host-${x.state}`, x.state)),
        h('span.muted.small', `#${x.id} · ${used}/${x.total_slots} slots in use`
          + `${others > 0 ? ` (${others} by other tenants)` : ''} · heartbeat ${ago(x.last_heartbeat_at)}`)),
      // A world across hosts lost it (or could not reach it): it runs jobs of its own but joins no spanning world for now.
      x.held_from_spans_until ? h('p.host-held.small', { title: x.held_reason || '' },
        `Held from spanning worlds until ${time(x.held_from_spans_until)}: ${x.held_reason || 'a world across hosts lost it'}`) : null,
      h('div.slots', x.slots.map(s => h(`div.slot${s.job_id ? '.held' : ''}`, { dataset: { slot: s.index } },
        h('div.slot-index', `slot ${s.index}`),
        h('div.slot-device.mono', s.device, s.memory_bytes ? ` · ${bytes(s.memory_bytes)}` : ''),
        h('div.slot-job', s.job_id ? h('a.mono', { href: `#/jobs/${s.job_id}`, title: s.job_id }, `job ${shortId(s.job_id)}`)
          : h('span.muted', others > 0 ? 'free or another tenant\'s' : 'free'))))));
  }

  const off = [hub.on('state', () => { clearTimeout(timer); timer = setTimeout(load, 300); }), hub.on('reconnected', load)];
  hub.subscribeTenant().catch(() => {});
  load();
  const poll = setInterval(load, 5000);
  return () => { off.forEach(f => f()); clearInterval(poll); clearTimeout(timer); };
}
