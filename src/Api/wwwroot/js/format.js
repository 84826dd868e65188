// Small helpers: building DOM safely (text, never HTML from data) and formatting numbers and times.

/** h('td.num', {title: 'x'}, 'text', child): an element with classes, attributes and children. */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name);
  if (classes.length) el.className = classes.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) { children.unshift(attrs); attrs = null; }
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) if (c != null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export const shortId = id => id.slice(0, 8);

export function number(x, digits = 4) {
  if (x == null || Number.isNaN(x)) return '–';
  if (x !== 0 && (Math.abs(x) < 1e-3 || Math.abs(x) >= 1e6)) return x.toExponential(2);
  return Number(x.toPrecision(digits)).toString();
}

export function integer(x) { return x == null ? '–' : Math.round(x).toLocaleString('en-US'); }

export function bytes(b) {
  if (b == null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(b) >= 1024 && i < units.length - 1) { b /= 1024; i++; }
  return `${i === 0 ? b : b.toFixed(b < 10 ? 2 : 1)} ${units[i]}`;
}

export function duration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '–';
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return h ? `${h}h ${String(m).padStart(2, '0')}m` : m ? `${m}m ${String(s).padStart(2, '0')}s` : `${s}s`;
}

/** Seconds from a number or LLaMA-Factory's "h:mm:ss". */
export function seconds(value) {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return null;
  let total = 0;
  for (const part of value.split(':')) { const x = Number(part); if (Number.isNaN(x)) return null; total = total * 60 + x; }
  return total;
}

/** Time left: from a trainer record (remaining_seconds / remaining_time), else from the job's estimated_finish. */
export function eta(record, job) {
  if (record) {
    const left = record.remaining_seconds ?? seconds(record.remaining_time);
    if (left != null) return left;
  }
  if (job?.estimated_finish && !['succeeded', 'failed', 'cancelled'].includes(job.state))
    return Math.max(0, (Date.parse(job.estimated_finish) - Date.now()) / 1000);
  return null;
}

export function ago(iso) {
  if (!iso) return '–';
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 5) return 'just now';
  return `${duration(s)} ago`;
}

export function time(iso) {
  if (!iso) return '–';
  return new Date(iso).toLocaleString(undefined, { dateStyle: 'short', timeStyle: 'medium' });
}

export function stateBadge(state) { return h(`span.badge.state-${state}`, { dataset: { state } }, state); }

export function progressBar(fraction, label) {
  const pct = fraction == null ? 0 : Math.max(0, Math.min(1, fraction)) * 100;
  return h('div.progress', { title: label ?? `${pct.toFixed(1)}%` },
    h('div.progress-fill', { style: `width:${pct.toFixed(1)}%` }),
    h('span.progress-label', label ?? (fraction == null ? '' : `${pct.toFixed(0)}%`)));
}
