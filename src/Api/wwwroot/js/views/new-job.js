// New job: upload a dataset (the API checks the whole file; its problems come back with line numbers),
// then either fill the common keys or paste a YAML/JSON spec (YAML is parsed here with js-yaml, since
// the API takes JSON), submit, and land on the job's page. 422 field errors show next to their field.

import { datasets, jobs, models, ApiError } from '../api.js';
import { h, bytes, integer } from '../format.js';

const yaml = () => import('../../lib/js-yaml.mjs');

/** The form's keys: [key, label, kind, default, hint, options]. Defaults suit the built-in tiny models. */
const FIELDS = [
  ['model_name_or_path', 'Model', 'model', 'builtin:tiny-llama', 'a name from the list: builtin:…, shape:…, a registered model, or job:<id> of your succeeded jobs'],
  ['stage', 'Stage', 'select', 'sft', 'dpo needs preference data (chosen/rejected)', ['sft', 'dpo']],
  ['finetuning_type', 'Fine-tuning', 'select', 'full', 'lora trains adapters only', ['full', 'lora']],
  ['sequence_parallel_size', 'sequence_parallel_size', 'int', 1, 'ranks that split every sequence'],
  ['sequence_parallel_mode', 'sequence_parallel_mode', 'select', 'zigzag-ring', 'how attention is split', ['zigzag-ring', 'ring', 'ulysses', 'hybrid']],
  ['cutoff_len', 'cutoff_len', 'int', 1024, 'max tokens per sequence'],
  ['max_steps', 'max_steps', 'int', 100, 'optimizer steps (−1: num_train_epochs)'],
  ['learning_rate', 'learning_rate', 'float', 1e-3, '1e-3 suits the tiny models; 1e-5–1e-4 real ones'],
  ['per_device_train_batch_size', 'per_device_train_batch_size', 'int', 1, 'sequences per rank per micro-batch'],
  ['gradient_accumulation_steps', 'gradient_accumulation_steps', 'int', 1, 'micro-batches per optimizer step'],
  ['logging_steps', 'logging_steps', 'int', 1, 'a point on the curves every N steps'],
  ['save_steps', 'save_steps', 'int', 50, 'a checkpoint every N steps'],
];

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
  for (const [key, label, kind, value, hint, options] of FIELDS) {
    let input;
    if (kind === 'select') input = h('select', options.map(o => h('option', { value: o, selected: o === value }, o)));
    else if (kind === 'model') input = h('input', { list: 'model-list', value });
    else input = h('input', { type: 'text', inputmode: kind === 'int' ? 'numeric' : 'decimal', value: String(value) });
    input.id = `f-${key}`;
    input.name = key;
    inputs[key] = input;
    errorFor[key] = h('div.field-error', { dataset: { errorFor: key } });
    grid.append(h('div.field', h('label', { for: input.id }, label), input, h('div.hint', hint), errorFor[key]));
  }
  const modelList = h('datalist', { id: 'model-list' }, h('option', { value: 'builtin:tiny-llama' }), h('option', { value: 'builtin:tiny-qwen2' }));
  const text = h('textarea', { id: 'spec-text', rows: 16, spellcheck: 'false',
    placeholder: 'model_name_or_path: builtin:tiny-qwen2\nstage: sft\nsequence_parallel_size: 2\ncutoff_len: 2048\nmax_steps: 60\nlearning_rate: 1e-3\n# dataset: filled in from the dataset above when left out' });
  const formTab = h('button.tab.active', { type: 'button', id: 'tab-form', onclick: () => setMode('form') }, 'Common keys');
  const textTab = h('button.tab', { type: 'button', id: 'tab-text', onclick: () => setMode('text') }, 'Paste YAML / JSON');
  const formPane = h('div', grid, modelList, h('p.small', h('button.link', { id: 'form-to-yaml', type: 'button', onclick: formToText }, 'Edit as YAML'), h('span.muted', ' — every other key of the job spec can be added there.')));
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
      if (err instanceof ApiError && err.status === 422) {
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
  models.list().then(list => modelList.replaceChildren(...list.map(m => h('option', { value: m.id }, `${m.kind}: ${m.model_type}, ${m.num_attention_heads} heads`)))).catch(() => {});
}
