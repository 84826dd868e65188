// Jobs: the tenant's jobs, newest first, filtered by state and paged. Rows move live: `progress`
// messages update a row's step, loss, tokens/s and ETA in place; `state` messages update its state, and
// a job this page does not show yet (just submitted, or now matching the filter) reloads the page of rows.

import { jobs, JOB_STATES } from '../api.js';
import * as hub from '../hub.js';
import { h, shortId, number, integer, duration, eta, ago, stateBadge, progressBar } from '../format.js';

const PAGE = 25;

export function render(root) {
  const params = new URLSearchParams(sessionStorage.getItem('longseq.jobs.filter') ?? '');
  let state = params.get('state') ?? '';
  const cursors = [null];   // the after of each page reached so far; the last is this page's
  let nextAfter = null;
  const rows = new Map();   // job id → { job, record, tr }
  let reloadTimer = null;

  const filter = h('select', { id: 'state-filter', 'aria-label': 'filter by state', onchange: () => {
    state = filter.value; cursors.length = 1;
    sessionStorage.setItem('longseq.jobs.filter', state ? `state=${state}` : '');
    load();
  } }, h('option', { value: '' }, 'all states'), JOB_STATES.map(s => h('option', { value: s, selected: s === state }, s)));
  const tbody = h('tbody');
  const status = h('p.muted.small');
  const prev = h('button', { onclick: () => { if (cursors.length > 1) cursors.pop(); load(); } }, '← newer');
  const next = h('button', { onclick: () => { if (nextAfter) { cursors.push(nextAfter); load(); } } }, 'older →');
  const error = h('p.error', { role: 'alert', hidden: true });

  root.replaceChildren(
    h('div.page-head', h('h2', 'Jobs'), h('div.toolbar', h('label.small', 'State ', filter), h('a.button.primary', { href: '#/new' }, '+ New job'))),
    error,
    h('div.card.table-card', h('table.jobs', { id: 'jobs-table' },
      h('thead', h('tr', ['Job', 'State', 'Model', 'Stage', 'SP', 'Progress', 'Loss', 'Tokens/s', 'ETA', 'Created'].map(c => h(['SP', 'Loss', 'Tokens/s', 'ETA'].includes(c) ? 'th.num' : 'th', { title: c === 'SP' ? 'sequence_parallel_size' : null }, c)))),
      tbody)),
    h('div.pager', prev, status, next));

  function cells(job, record) {
    const step = record?.current_steps ?? job.current_step;
    const total = record?.total_steps ?? job.total_steps;
    const fraction = step != null && total ? step / total : job.progress;
    const label = step != null && total ? `${step} / ${total}` : job.state === 'succeeded' ? 'done' : '';
    const left = ['running', 'scheduled'].includes(job.state) ? eta(record, job) : null;
    return [
      h('td', h('a.mono', { href: `#/jobs/${job.id}`, title: job.id }, shortId(job.id))),
      h('td', stateBadge(job.state)),
      h('td.mono', job.model.replace(/^builtin:/, '')),
      h('td', job.stage + (job.spec?.finetuning_type === 'lora' ? ' · lora' : '')),
      h('td.num', String(job.sequence_parallel_size)),
      h('td.progress-cell', progressBar(fraction, label)),
      h('td.num', number(record?.loss ?? job.loss)),
      h('td.num', integer(record?.tokens_per_sec ?? job.tokens_per_sec)),
      h('td.num', left == null ? '–' : duration(left)),
      h('td.small', { title: job.created_at }, ago(job.created_at)),
    ];
  }

  function draw(id) {
    const row = rows.get(id);
    row.tr.replaceChildren(...cells(row.job, row.record));
    row.tr.dataset.state = row.job.state;
  }

  async function load() {
    try {
      const page = await jobs.list(state, PAGE, cursors[cursors.length - 1]);
      nextAfter = page.next_after;
      error.hidden = true;
      rows.clear();
      tbody.replaceChildren();
      for (const job of page.data) {
        const tr = h('tr', { dataset: { jobId: job.id } });
        rows.set(job.id, { job, record: null, tr });
        tbody.append(tr);
        draw(job.id);
      }
      if (page.data.length === 0) tbody.append(h('tr', h('td.empty', { colSpan: 10 }, state ? `No ${state} jobs.` : 'No jobs yet. ', !state && h('a', { href: '#/new' }, 'Submit one.'))));
      status.textContent = page.data.length === 0 ? '' : `page ${cursors.length}`;
      prev.disabled = cursors.length === 1;
      next.disabled = !page.has_more;
    } catch (e) {
      error.textContent = `Could not load jobs: ${e.message}`;
      error.hidden = false;
    }
  }

  function reloadSoon() { clearTimeout(reloadTimer); reloadTimer = setTimeout(load, 300); }

  const off = [
    hub.on('progress', m => {
      const row = rows.get(m.job_id);
      if (!row) return;
      if (row.record && row.record.current_steps > m.record.current_steps) return;
      row.record = m.record;
      if (row.job.state === 'scheduled') row.job.state = 'running';
      draw(m.job_id);
    }),
    hub.on('state', m => {
      const row = rows.get(m.job_id);
      if (!row || (state && m.state !== state)) { reloadSoon(); return; }
      row.job.state = m.state;
      draw(m.job_id);
      // Finished or restarted jobs: take the server's final figures (progress, ETA cleared).
      if (['succeeded', 'failed', 'cancelled', 'queued'].includes(m.state)) jobs.get(m.job_id).then(job => { row.job = job; row.record = null; draw(job.id); }).catch(() => {});
    }),
    hub.on('reconnected', load),
  ];
  hub.subscribeTenant().catch(() => {});
  load();
  // Relative times ("2m ago", ETA) age between messages.
  const tick = setInterval(() => { for (const id of rows.keys()) draw(id); }, 5000);

  return () => { off.forEach(f => f()); clearInterval(tick); clearTimeout(reloadTimer); };
}
