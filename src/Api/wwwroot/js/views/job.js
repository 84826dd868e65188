// One job: its figures and curves drawn live as steps arrive over the hub, with the history loaded from
// /metrics on open (subscribe first, then fetch, merging by step, so no step falls between the two);
// events, checkpoints, artifacts (downloaded with the key, as blobs) and a cancel button.

import { jobs, CANCELLABLE, TERMINAL } from '../api.js';
import * as hub from '../hub.js';
import { StepChart } from '../chart.js';
import { h, shortId, number, integer, bytes, duration, seconds, eta, time, stateBadge, progressBar } from '../format.js';

export function render(root, id) {
  let job = null;
  let last = null;          // newest trainer record
  let disposed = false;
  let filesTimer = null;

  const charts = {
    loss: new StepChart('loss', 'Loss', [
      { label: 'loss', value: r => r.loss, color: '#5b9dff' },
      { label: 'eval loss', value: r => r.eval_loss, color: '#f0a35b' }]),
    rewards: new StepChart('rewards', 'DPO rewards', [
      { label: 'accuracy', value: r => r['rewards/accuracies'], color: '#4cc38a', scale: 'acc' },
      { label: 'margin', value: r => r['rewards/margins'], color: '#c77dff', scale: 'margin' }]),
    lr: new StepChart('lr', 'Learning rate', [{ label: 'lr', value: r => r.lr, color: '#f5c451' }]),
    speed: new StepChart('speed', 'Tokens / s', [{ label: 'tokens/s', value: r => r.tokens_per_sec, color: '#4fd1c5' }]),
  };

  const head = h('div.page-head');
  const error = h('p.error', { role: 'alert', hidden: true });
  const stats = h('div.stats');
  const memory = h('div.card', h('h3', 'Memory per rank'), h('div.memory', { id: 'memory' }, h('p.muted.small', 'no step logged yet')));
  const events = h('tbody');
  const checkpoints = h('ul.files', { id: 'checkpoints' });
  const artifacts = h('ul.files', { id: 'artifacts' });
  const spec = h('pre.spec');
  charts.rewards.el.hidden = true;

  root.replaceChildren(head, error, stats,
    h('div.charts', charts.loss.el, charts.rewards.el, charts.lr.el, charts.speed.el),
    h('div.grid2',
      h('div', memory,
        h('div.card', h('h3', 'Checkpoints'), checkpoints),
        h('div.card', h('h3', 'Artifacts'), artifacts)),
      h('div', h('div.card', h('h3', 'Events'), h('table.events', { id: 'events' }, h('thead', h('tr', h('th', 'When'), h('th', 'State'), h('th', 'Reason'))), events)),
        h('details.card', h('summary', 'Job spec'), spec))));

  function showError(message) { error.textContent = message; error.hidden = !message; }

  function drawHead() {
    const cancel = h('button.danger', { id: 'cancel-job', disabled: !CANCELLABLE.includes(job.state), onclick: onCancel }, 'Cancel job');
    head.replaceChildren(
      h('div', h('h2', 'Job ', h('span.mono', { title: job.id }, shortId(job.id)), ' ', h('span', { id: 'job-state' }, stateBadge(job.state))),
        h('p.muted.small', `${job.model} · ${job.stage}${job.spec.finetuning_type === 'lora' ? ' (LoRA)' : ''} · sequence_parallel_size ${job.sequence_parallel_size} (${job.spec.sequence_parallel_mode})`
          + `${job.data_parallel_size > 1 ? ` × data_parallel_size ${job.data_parallel_size}` : ''} · dataset ${job.dataset_id}`
          + `${job.host_id != null ? ` · host ${job.host_id}` : ''}${job.attempt > 1 ? ` · attempt ${job.attempt}` : ''}`)),
      h('div.toolbar', TERMINAL.includes(job.state) ? null : cancel));
    if (job.error) showError(job.error);
  }

  function drawStats() {
    const step = last?.current_steps ?? job.current_step;
    const total = last?.total_steps ?? job.total_steps;
    const left = TERMINAL.includes(job.state) ? null : eta(last, job);
    const elapsed = last ? last.elapsed_seconds ?? seconds(last.elapsed_time) : null;
    const stat = (name, label, value) => h('div.stat', { dataset: { stat: name } }, h('div.stat-label', label), h('div.stat-value', value));
    stats.replaceChildren(
      h('div.stat.wide', { dataset: { stat: 'progress' } }, h('div.stat-label', 'Progress'),
        progressBar(step != null && total ? step / total : job.progress, step != null && total ? `step ${step} / ${total}` : job.state)),
      stat('loss', 'Loss', number(last?.loss ?? job.loss)),
      stat('lr', 'Learning rate', number(last?.lr)),
      stat('tokens-per-sec', 'Tokens / s', integer(last?.tokens_per_sec ?? job.tokens_per_sec)),
      stat('trained-tokens', 'Trained tokens', integer(last?.trained_tokens ?? job.trained_tokens)),
      stat('elapsed', 'Elapsed', duration(elapsed)),
      stat('eta', 'ETA', left == null ? '–' : duration(left)));
  }

  function drawMemory() {
    const peaks = last?.rank_peak_bytes;
    if (!peaks?.length) return;
    const baseline = last.rank_baseline_bytes ?? [];
    const max = Math.max(...peaks, ...baseline, 1);
    memory.querySelector('.memory').replaceChildren(...peaks.map((peak, rank) => h('div.mem-row', { dataset: { rank } },
      h('span.mem-rank', `rank ${rank}`),
      h('div.mem-bar', { title: `peak ${bytes(peak)}${baseline[rank] != null ? `, baseline ${bytes(baseline[rank])}` : ''}` },
        h('div.mem-peak', { style: `width:${(100 * peak / max).toFixed(1)}%` }),
        baseline[rank] != null ? h('div.mem-base', { style: `width:${(100 * baseline[rank] / max).toFixed(1)}%` }) : null),
      h('span.mem-value', bytes(peak)))),
      h('p.muted.small', 'Peak bytes in use per rank since the previous logged step', baseline.length ? ' (darker: baseline — weights, optimizer state).' : '.'));
  }

  function addRecord(step, record) {
    for (const c of Object.values(charts)) c.add(step, record);
    if (charts.rewards.el.hidden && record['rewards/accuracies'] != null) charts.rewards.el.hidden = false;
    if (!last || step >= last.current_steps) { last = record; drawStats(); drawMemory(); }
  }

  async function loadEvents() {
    const list = await jobs.events(id);
    events.replaceChildren(...list.slice().reverse().map(e => h('tr',
      h('td.small', { title: e.at }, time(e.at)),
      h('td', e.from_state ? [stateBadge(e.from_state), ' → '] : null, stateBadge(e.to_state)),
      h('td.small', e.reason))));
  }

  async function loadFiles() {
    const [cps, files] = await Promise.all([jobs.checkpoints(id), jobs.artifacts(id)]);
    checkpoints.replaceChildren(...(cps.length ? cps.map(c => h('li', h('span.mono', `checkpoint-${c.step}`), h('span.muted.small', ` step ${c.step} · ${time(c.created_at)}`)))
      : [h('li.muted.small', 'none yet')]));
    const top = files.filter(f => !f.path.includes('/'));
    const inCheckpoints = files.length - top.length;
    artifacts.replaceChildren(...(top.length ? top.map(f => h('li',
      h('button.link.mono', { dataset: { path: f.path }, title: `download ${f.path}`, onclick: e => onDownload(e.currentTarget, f.path) }, f.path),
      h('span.muted.small', ` ${bytes(f.size_bytes)}`))) : [h('li.muted.small', 'none yet')]),
      ...(inCheckpoints ? [h('li.muted.small', `+ ${inCheckpoints} file(s) inside checkpoint folders (GET /v1/jobs/${shortId(id)}…/artifacts lists them)`)] : []));
  }

  function loadFilesSoon() { if (!filesTimer) filesTimer = setTimeout(() => { filesTimer = null; loadFiles().catch(() => {}); }, 2000); }

  async function onDownload(button, path) {
    button.disabled = true;
    try { await jobs.download(id, path); } catch (e) { showError(`Download of ${path} failed: ${e.message}`); } finally { button.disabled = false; }
  }

  async function onCancel(e) {
    const button = e.currentTarget;
    if (!confirm(`Cancel job ${shortId(id)}?`)) return;
    button.disabled = true;
    try { job = await jobs.cancel(id); drawHead(); await loadEvents(); }
    catch (err) { showError(`Cancel failed: ${err.message}`); button.disabled = false; }
  }

  async function refreshJob() {
    job = await jobs.get(id);
    spec.textContent = JSON.stringify(job.spec, null, 2);
    drawHead();
    drawStats();
  }

  /** The whole history (open), or what was missed while the hub was away (reconnect). */
  async function loadMetrics(afterStep) {
    const list = await jobs.metrics(id, afterStep);
    for (const m of list) addRecord(m.step, m.record);
  }

  const off = [
    hub.on('progress', m => {
      if (m.job_id !== id) return;
      addRecord(m.step, m.record);
      if (job && job.state === 'scheduled') { job.state = 'running'; drawHead(); }
      loadFilesSoon();
    }),
    hub.on('state', async m => {
      if (m.job_id !== id) return;
      await refreshJob().catch(() => {});
      loadEvents().catch(() => {});
      loadFilesSoon();
    }),
    hub.on('reconnected', () => { if (job) Promise.all([refreshJob(), loadMetrics(last?.current_steps), loadEvents()]).catch(() => {}); }),
  ];
  let unsubscribe = null;

  (async () => {
    try {
      unsubscribe = await hub.subscribeJob(id);
      if (disposed) { unsubscribe(); return; }
      await refreshJob();
      await Promise.all([loadMetrics(), loadEvents(), loadFiles()]);
      root.querySelector('.charts').dataset.loaded = 'true';
    } catch (e) {
      showError(e.status === 404 ? `No job ${id} (or it belongs to another tenant).` : `Could not load the job: ${e.message}`);
    }
  })();
  const tick = setInterval(() => { if (job && !TERMINAL.includes(job.state)) drawStats(); }, 5000);

  return () => {
    disposed = true;
    off.forEach(f => f());
    unsubscribe?.();
    clearInterval(tick);
    clearTimeout(filesTimer);
    Object.values(charts).forEach(c => c.dispose());
  };
}
