// The REST API, with the signed-in key in the Authorization header. The key lives in sessionStorage
// (gone when the tab closes) and never in a URL: downloads too go through fetch, not links.

const KEY = 'longseq.key';

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  get signedIn() { return !!sessionStorage.getItem(KEY); },
  save(key) { sessionStorage.setItem(KEY, key); },
  clear() { sessionStorage.removeItem(KEY); },
};

/** An answer that was not 2xx: its status and its problem details (RFC 7807), when it had any. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem ?? {};
  }
  /** 422 field errors: { field: [message, …] }. */
  get fieldErrors() { return this.problem.errors ?? {}; }
}

let onUnauthorized = () => {};
/** Called when the stored key stops working (revoked, or the database was reset). */
export function whenUnauthorized(fn) { onUnauthorized = fn; }

async function call(path, { method = 'GET', json, body, key = session.key } = {}) {
  const headers = { Authorization: `Bearer ${key}` };
  if (json !== undefined) { headers['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  const response = await fetch(path, { method, headers, body });
  if (response.ok) return response;
  let problem = null;
  try { problem = await response.json(); } catch { /* not JSON */ }
  if (response.status === 401 && key === session.key) onUnauthorized();
  throw new ApiError(response.status, problem ?? { title: response.statusText || `HTTP ${response.status}` });
}

export async function getJson(path, options) { return (await call(path, options)).json(); }
export async function postJson(path, json) { return (await call(path, { method: 'POST', json })).json(); }
export async function postForm(path, form) { return (await call(path, { method: 'POST', body: form })).json(); }

/** Fetches a file with the key and hands it to the browser as a download (a blob URL, not a link with the key). */
export async function download(path, fileName) {
  const blob = await (await call(path)).blob();
  const url = URL.createObjectURL(blob);
  const a = Object.assign(document.createElement('a'), { href: url, download: fileName });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Checks a key before keeping it: who it belongs to, or an ApiError (401 for a wrong key). */
export async function whoIs(key) { return (await call('/v1/me', { key })).json(); }

/** Every item of a paged list ({data, has_more, next_after}), following next_after as ?after=. */
export async function all(path) {
  const items = [];
  for (let after = null; ;) {
    const sep = path.includes('?') ? '&' : '?';
    const page = await getJson(after == null ? path : `${path}${sep}${new URLSearchParams({ after })}`);
    items.push(...page.data);
    if (!page.has_more) return items;
    after = page.next_after;
  }
}

export const jobs = {
  /** One page, newest first: {data, has_more, next_after}; `after` is the previous page's next_after. */
  list: (state, limit, after) => getJson(`/v1/jobs?${new URLSearchParams({ ...(state ? { state } : {}), limit, ...(after ? { after } : {}) })}`),
  get: id => getJson(`/v1/jobs/${id}`),
  submit: spec => postJson('/v1/jobs', spec),
  cancel: id => postJson(`/v1/jobs/${id}/cancel`),
  events: id => all(`/v1/jobs/${id}/events`),
  /** The steps after `afterStep` (all of them when it is null). */
  metrics: (id, afterStep) => all(`/v1/jobs/${id}/metrics?${new URLSearchParams({ limit: 500, ...(afterStep != null ? { after: afterStep } : {}) })}`),
  checkpoints: id => all(`/v1/jobs/${id}/checkpoints`),
  artifacts: id => all(`/v1/jobs/${id}/artifacts`),
  download: (id, path) => download(`/v1/jobs/${id}/download?${new URLSearchParams({ path })}`, path.split('/').pop()),
};

export const datasets = {
  list: async () => ({ data: await all('/v1/datasets') }),
  upload: file => { const form = new FormData(); form.append('file', file, file.name); return postForm('/v1/datasets', form); },
};

export const hosts = { list: () => all('/v1/hosts') };
export const models = { list: () => all('/v1/models') };
export const JOB_STATES = ['validating', 'queued', 'scheduled', 'running', 'cancelling', 'pausing', 'paused', 'succeeded', 'failed', 'cancelled'];
export const TERMINAL = ['succeeded', 'failed', 'cancelled'];
export const CANCELLABLE = ['validating', 'queued', 'scheduled', 'running'];
