// One SignalR connection to /hubs/progress for the whole page. Views subscribe to the tenant's jobs
// or to one job and listen for `progress` (a MetricDto per logged step) and `state` (a JobStateMessage).
// Subscriptions are hub groups, which a reconnect forgets: they are made again, and views are told
// (`onReconnected`) so they can fetch what they missed.

import { session } from './api.js';

let connection = null;
let starting = null;
const listeners = { progress: new Set(), state: new Set(), reconnected: new Set(), status: new Set() };
const jobSubscriptions = new Map();   // jobId → count of views that want it
let tenantSubscribed = false;

function setStatus(status) { for (const fn of listeners.status) fn(status); }

function build() {
  const c = new signalR.HubConnectionBuilder()
    // The browser cannot put a header on a WebSocket, so the client sends the key as ?access_token= on
    // that one request (SignalR's convention); REST calls use the Authorization header.
    .withUrl('/hubs/progress', { accessTokenFactory: () => session.key })
    .withAutomaticReconnect({ nextRetryDelayInMilliseconds: ctx => Math.min(10_000, 500 * 2 ** ctx.previousRetryCount) })
    .configureLogging(signalR.LogLevel.Warning)
    .build();
  c.on('progress', m => { for (const fn of listeners.progress) fn(m); });
  c.on('state', m => { for (const fn of listeners.state) fn(m); });
  c.onreconnecting(() => setStatus('reconnecting'));
  c.onreconnected(async () => {
    await resubscribe();
    setStatus('live');
    for (const fn of listeners.reconnected) fn();
  });
  c.onclose(() => { setStatus('offline'); if (session.signedIn) setTimeout(ensureStarted, 3000); });
  return c;
}

async function resubscribe() {
  if (tenantSubscribed) await connection.invoke('SubscribeTenant');
  for (const id of jobSubscriptions.keys()) await connection.invoke('SubscribeJob', id).catch(() => {});
}

/** Starts the connection (once); resolves when it is connected. */
export function ensureStarted() {
  if (!session.signedIn) return Promise.resolve();
  connection ??= build();
  if (connection.state === signalR.HubConnectionState.Connected) return Promise.resolve();
  starting ??= connection.start()
    .then(async () => { await resubscribe(); setStatus('live'); for (const fn of listeners.reconnected) fn(); })
    .catch(e => { setStatus('offline'); console.warn('hub:', e); setTimeout(ensureStarted, 3000); })
    .finally(() => { starting = null; });
  return starting;
}

export async function stop() {
  const c = connection;
  connection = null;
  tenantSubscribed = false;
  jobSubscriptions.clear();
  if (c) await c.stop();
}

/** Listens to a hub event ('progress', 'state'), or to 'reconnected' / 'status'; returns the unsubscribe function. */
export function on(event, fn) {
  listeners[event].add(fn);
  return () => listeners[event].delete(fn);
}

export async function subscribeTenant() {
  tenantSubscribed = true;
  await ensureStarted();
  if (connection?.state === signalR.HubConnectionState.Connected) await connection.invoke('SubscribeTenant');
}

/** Subscribes to one job; returns a function that unsubscribes (when no other view still wants it). */
export async function subscribeJob(jobId) {
  jobSubscriptions.set(jobId, (jobSubscriptions.get(jobId) ?? 0) + 1);
  await ensureStarted();
  if (connection?.state === signalR.HubConnectionState.Connected) await connection.invoke('SubscribeJob', jobId);
  return () => {
    const n = (jobSubscriptions.get(jobId) ?? 1) - 1;
    if (n > 0) { jobSubscriptions.set(jobId, n); return; }
    jobSubscriptions.delete(jobId);
    if (connection?.state === signalR.HubConnectionState.Connected) connection.invoke('UnsubscribeJob', jobId).catch(() => {});
  };
}
