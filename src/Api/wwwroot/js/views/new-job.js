// New job: upload a dataset (the API checks the whole file; its problems come back with line numbers),
// then either fill the common keys or paste a YAML/JSON spec (YAML is parsed here with js-yaml, since
// the API takes JSON), submit, and land on the job's page. 422 field errors show next to their field.
// As the common keys change, POST /v1/estimates shows each rank's predicted memory and the N that
// sequence_parallel_size: auto would pick on the registered hosts.

import { datasets, jobs, models, postJson, ApiError } from '../api.js';
import { h, bytes, integer } from '../format.js';

const yaml = () => import('../../lib/js-yaml.mjs');

/** The form's keys: [key, label, kind, default]. Defaults suit the built-in tiny models; the hints and the
 *  choices of each select come from the job spec's declaration (the API's JobSubmission schema). */
const FIELDS = [
  ['model_name_or_path', 'Model', 'model', 'builtin:tiny-llama'],
  ['stage', 'Stage', 'select', 'sft'],
  ['finetuning_type', 'Fine-tuning', 'select', 'full'],
  ['sequence_parallel_size', 'sequence_parallel_size', 'int', 1],
  ['sequence_parallel_mode', 'sequence_parallel_mode', 'select', 'zigzag-ring'],
  ['cutoff_len', 'cutoff_len', 'int', 1024],
  ['max_steps', 'max_steps', 'int', 100],
  ['learning_rate', 'learning_rate', 'float', 1e-3],
  ['per_device_train_batch_size', 'per_device_train_batch_size', 'int', 1],
  ['gradient_accumulation_steps', 'gradient_accumulation_steps', 'int', 1],
  ['logging_steps', 'logging_steps', 'int', 1],
  ['save_steps', 'save_steps', 'int', 50],
];

/** The declared keys (type, enum, bounds, description) as the OpenAPI document states them. */
async function declaredKeys() {
  const response = await fetch('/openapi/v1.json');
  if (!response.ok) throw new Error(`openapi: HTTP ${response.status}`);
  return (await response.json()).components.schemas.JobSubmission.properties;
}

/** "1 to 1024", "> 0 and ≤ 1", or '' — the bounds of a number key. */
function range(p) {
  const lo = p.exclusiveMinimum ?? p.minimum;
  if (lo == null || p.maximum == null) return '';
  return p.exclusiveMinimum != null ? `> ${lo} and ≤ ${p.maximum}` : `${lo} to ${p.maximum}`;
}

export function render(root) {
  let mode = 'form';
  const inputs = {};
  const errorFor = {};

  // --- dataset ---
  const file = h('input', { id: 'dataset-file', type: 'file', accept: '.json,.jsonl' });
  const uploadButton = h('button', { id: 'upload-dataset', type: 'button', onclick: onUpload }, 'Upload & check');
  const datasetSelect = h('select', { id: 'dataset-select', onchange: () => showDataset(known.get(datasetSelect.value)) }, h('option', { value: '' }, '— upload one, or pick —'));
  const datasetResult = h('div', { id: 'dataset-result' });
  const datasetError = h('div.field-error', { dataset: { errorFor: 'dataset' } });
  const known = new Map();

  // --- spec ---
  const grid = h('div.form-grid');
  const hintFor = {};
  for (const [key, label, kind, value] of FIELDS) {
    let input;
    if (kind === 'select') input = h('select', h('option', { value, selected: true }, value));
    else if (kind === 'model') input = h('input', { list: 'model-list', value });
    else input = h('input', { type: 'text', inputmode: kind === 'int' ? 'numeric' : 'decimal', value: String(value) });
    input.id = `f-${key}`;
    input.name = key;
    inputs[key] = input;
    errorFor[key] = h('div.field-error', { dataset: { errorFor: key } });
    hintFor[key] = h('div.hint');
    grid.append(h('div.field', h('label', { for: input.id }, label), input, hintFor[key], errorFor[key]));
  }
  declaredKeys().then(props => {
    for (const [key, , kind, value] of FIELDS) {
      const p = props[key];
      if (!p) continue;
      hintFor[key].textContent = [p.description, range(p)].filter(Boolean).join(' ');
      if (kind === 'select' && p.enum) inputs[key].replaceChildren(...p.enum.map(o => h('option', { value: o, selected: o === value }, o)));
    }
  }).catch(() => {});
  const estimate = h('div.estimate.small', { id: 'memory-estimate', 'aria-live': 'polite' });
  let estimateTimer = null;
  grid.addEventListener('input', () => { clearTimeout(estimateTimer); estimateTimer = setTimeout(showEstimate, 300); });
  const modelList = h('datalist', { id: 'model-list' }, h('option', { value: 'builtin:tiny-llama' }), h('option', { value: 'builtin:tiny-qwen2' }));
  const text = h('textarea', { id: 'spec-text', rows: 16, spellcheck: 'false',
    placeholder: 'model_name_or_path: builtin:tiny-qwen2\nstage: sft\nsequence_parallel_size: 2\ncutoff_len: 2048\nmax_steps: 60\nlearning_rate: 1e-3\n# dataset: filled in from the dataset above when left out' });
  const formTab = h('button.tab.active', { type: 'button', id: 'tab-form', onclick: () => setMode('form') }, 'Common keys');
  const textTab = h('button.tab', { type: 'button', id: 'tab-text', onclick: () => setMode('text') }, 'Paste YAML / JSON');
  const formPane = h('div', grid, estimate, modelList, h('p.small', h('button.link', { id: 'form-to-yaml', type: 'button', onclick: formToText }, 'Edit as YAML'), h('span.muted', ' — every other key of the job spec can be added there.')));
  const textPane = h('div', { hidden: true }, text, h('p.muted.small', 'LLaMA-Factory keys; `dataset` is a dataset id. Unknown keys are refused with a suggestion.'));
  const submitErrors = h('div.error', { id: 'submit-errors', role: 'alert', hidden: true });
  const submit = h('button.primary', { id: 'submit-job', type: 'submit' }, 'Submit job');

  root.replaceChildren(
    h('div.page-head', h('h2', 'New job')),
    h('form.new-job', { onsubmit: onSubmit, novalidate: true },
      h('section.card', h('h3', '1 · Dataset'),
        h('p.muted.small', 'alpaca or sharegpt, .json or .jsonl (LLaMA-Factory formats); the whole file is checked on upload.'),
        h('div.row', file, uploadButton),
        h('div.row', h('label.small', { for: 'dataset-select' }, 'Dataset '), datasetSelect),
        datasetError, datasetResult),
      h('section.card', h('h3', '2 · Spec'), h('div.tabs', formTab, textTab), formPane, textPane),
      h('div.submit-row', submit, submitErrors)));

  function setMode(m) {
    mode = m;
    formTab.classList.toggle('active', m === 'form');
    textTab.classList.toggle('active', m === 'text');
    formPane.hidden = m !== 'form';
    textPane.hidden = m !== 'text';
  }

  async function formToText() {
    const { dump } = await yaml();
    text.value = dump(formSpec());
    setMode('text');
  }

  /** Each rank's predicted peak and auto's N for the form's keys (the memory model; no dataset needed). */
  async function showEstimate() {
    const spec = formSpec();
    delete spec.dataset;
    try {
      const e = await postJson('/v1/estimates', spec);
      const auto = e.auto_sequence_parallel_size != null
        ? `sequence_parallel_size auto → ${e.auto_sequence_parallel_size}` : 'auto: no registered host reports slot memory that fits';
      estimate.replaceChildren(
        h('strong', { id: 'estimate-peak', dataset: { peakBytes: String(e.peak_bytes) } }, `Predicted per rank: ${bytes(e.peak_bytes)}`),
        ` at sequence_parallel_size ${e.sequence_parallel_size} (peak at ${e.peak_moment.replaceAll('_', ' ')}`,
        e.slot_memory_bytes != null ? `; slots hold ${bytes(e.slot_memory_bytes)})` : ')',
        h('div', { id: 'estimate-auto' }, auto),
        e.fits ? null : h('div.field-error', e.message));
    } catch (err) {
      estimate.replaceChildren(h('span.muted', err instanceof ApiError && err.status === 422
        ? `No estimate: ${Object.entries(err.fieldErrors).map(([k, m]) => `${k}: ${m[0]}`).join('; ')}` : 'No estimate right now.'));
    }
  }

  function showDataset(d) {
    datasetError.textContent = '';
    if (!d) { datasetResult.replaceChildren(); return; }
    const c = d.char_length;
    datasetResult.replaceChildren(h('div.ok-box', { dataset: { datasetId: d.id } },
      h('strong', '✓ ', d.name), ` — ${d.format}${d.is_preference ? ', preference data (chosen/rejected): use stage dpo' : ''}, ${integer(d.rows)} rows, ${bytes(d.size_bytes)}`,
      c ? h('div.muted.small', `characters per example: min ${c.min} · median ${c.p50} · p95 ${c.p95} · max ${c.max}`) : null,
      h('div.muted.small.mono', d.id)));
  }

  function addDataset(d, select) {
    if (!known.has(d.id)) datasetSelect.append(h('option', { value: d.id }, `${d.name} · ${d.format}${d.is_preference ? ' · preference' : ''} · ${d.rows} rows`));
    known.set(d.id, d);
    if (select) { datasetSelect.value = d.id; showDataset(d); }
  }

  async function onUpload() {
    const f = file.files[0];
    if (!f) { datasetError.textContent = 'Choose a .json or .jsonl file first.'; return; }
    uploadButton.disabled = true;
    uploadButton.textContent = 'Checking…';
    datasetResult.replaceChildren();
    try {
      const d = await datasets.upload(f);
      addDataset(d, true);
      if (d.is_preference && inputs.stage.value === 'sft') inputs.stage.value = 'dpo';
      if (!d.is_preference && inputs.stage.value === 'dpo') inputs.stage.value = 'sft';
    } catch (e) {
      datasetResult.replaceChildren(problemBox(e, f.name));
    } finally { uploadButton.disabled = false; uploadButton.textContent = 'Upload & check'; }
  }

  function problemBox(e, name) {
    const p = e instanceof ApiError ? e.problem : { title: e.message };
    const lines = p.lines ?? [];
    return h('div.problem-box', { id: 'dataset-problem' },
      h('strong', p.title ?? `${name} was refused`),
      p.detail ? h('div', p.detail) : null,
      lines.length ? h('ul.lines', lines.map(l => h('li', h('span.mono', `line ${l.line}`), l.row != null ? h('span.muted', ` (row ${l.row})`) : null, `: ${l.message}`))) : null,
      p.error_count > lines.length ? h('div.muted.small', `…and ${p.error_count - lines.length} more`) : null,
      !lines.length && p.errors ? h('ul.lines', Object.entries(p.errors).flatMap(([k, ms]) => ms.map(m => h('li', `${k}: ${m}`)))) : null);
  }

  function formSpec() {
    const spec = {};
    for (const [key, , kind] of FIELDS) {
      const raw = inputs[key].value.trim();
      if (raw === '') continue;
      const n = Number(raw);
      spec[key] = (kind === 'int' || kind === 'float') && raw !== '' && !Number.isNaN(n) ? n : raw;
    }
    if (datasetSelect.value) spec.dataset = datasetSelect.value;
    return spec;
  }

  async function textSpec() {
    const source = text.value.trim();
    if (!source) throw new Error('Paste a job spec (YAML or JSON) first.');
    let spec;
    if (source.startsWith('{')) {
      try { spec = JSON.parse(source); } catch (e) { throw new Error(`Not valid JSON: ${e.message}`); }
    } else {
      const { load } = await yaml();
      try { spec = load(source); } catch (e) { throw new Error(`Not valid YAML: ${e.message}`); }
    }
    if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw new Error('The spec must be a mapping of keys to values.');
    if (spec.dataset == null && datasetSelect.value) spec.dataset = datasetSelect.value;
    return spec;
  }

  function clearErrors() {
    for (const el of Object.values(errorFor)) el.replaceChildren();
    datasetError.textContent = '';
    submitErrors.hidden = true;
    submitErrors.replaceChildren();
  }

  async function onSubmit(e) {
    e.preventDefault();
    clearErrors();
    submit.disabled = true;
    try {
      const spec = mode === 'form' ? formSpec() : await textSpec();
      const job = await jobs.submit(spec);
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      const rest = [];
      if (err instanceof ApiError && Object.keys(err.fieldErrors).length) {
        for (const [field, messages] of Object.entries(err.fieldErrors)) {
          const target = field === 'dataset' ? datasetError : mode === 'form' ? errorFor[field] : null;
          if (target) target.replaceChildren(...messages.map(m => h('div', m)));
          else rest.push(...messages.map(m => `${field}: ${m}`));
        }
        if (!rest.length && mode === 'form') rest.push('Fix the fields marked above.');
      } else rest.push(err.message);
      submitErrors.replaceChildren(h('strong', err instanceof ApiError ? err.problem.title ?? 'Refused' : 'Not submitted'), h('ul', rest.map(m => h('li', m))));
      submitErrors.hidden = false;
      // Take the user to the first field at fault.
      root.querySelector('.field:has(.field-error:not(:empty)) input, .field:has(.field-error:not(:empty)) select')?.focus();
    } finally { submit.disabled = false; }
  }

  datasets.list().then(page => page.data.forEach(d => addDataset(d, false))).catch(() => {});
  showEstimate();
  models.list().then(list => modelList.replaceChildren(...list.map(m => h('option', { value: m.id }, `${m.model_type}, ${m.num_attention_heads} heads`)))).catch(() => {});
  models.list().then(list => modelList.replaceChildren(...list.map(m => h('option', { value: m.id }, `${m.kind}: ${m.model_type}, ${m.num_attention_heads} heads`)))).catch(() => {});
}
