import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import type { Registry } from '@ripple/telemetry';
import { logLines, waitFor } from '@ripple/testing';
import { serviceShell } from './health.js';
import { installOverloadProtection } from './overload.js';

// Shedding on event-loop delay, through app.inject: @fastify/under-pressure reads its histogram
// once a second, and these tests hold the event loop the way start-up work or overload would.

const MAX_DELAY_MS = 30;

/** Keeps the thread busy for `ms` without yielding to the event loop. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

/**
 * A service shell with shedding on event-loop delay and one route, POST /work. `startUp` runs
 * right after the plugin started its histogram, as a service's start-up work would.
 */
async function guardedApp(
  t: { after(fn: () => Promise<void>): void },
  startUp?: () => void,
): Promise<{
  app: FastifyInstance;
  metrics: Registry;
}> {
  const metrics = createMetricsRegistry('overload-test');
  const app = serviceShell({ logger: createLogger('overload-test', 'info', logLines().stream), metrics, checks: {} });
  t.after(() => app.close());
  await installOverloadProtection(
    app,
    { maxEventLoopDelayMs: MAX_DELAY_MS, maxInFlight: 0, retryAfterSeconds: 3 },
    metrics,
  );
  startUp?.();
  app.post('/work', () => ({ done: true }));
  await app.ready();
  return { app, metrics };
}

/** The plugin's event-loop delay as of its last reading, in ms (0 before its first reading). */
const reading = (app: FastifyInstance) => app.memoryUsage().eventLoopDelay;

const shedCount = async (metrics: Registry, reason = 'event_loop_delay') =>
  (await metrics.getSingleMetric('http_requests_shed_total')?.get())?.values.find((v) => v.labels['reason'] === reason)
    ?.value;

test('a service whose event loop was busy from its start should not shed for lack of an event-loop sample', async (t) => {
  // Start-up work (module compilation, client initialisation on a busy host) holds the loop past
  // the first reading: the histogram then holds no sample, which the plugin reports as Infinity.
  const { app, metrics } = await guardedApp(t, () => busy(1_100));
  await waitFor('the first reading', 5_000, () => (reading(app) !== 0 ? true : undefined));
  assert.equal(reading(app), Infinity, 'the premise: the plugin read no sample');
  const res = await app.inject({ method: 'POST', url: '/work' });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(await shedCount(metrics), 0);
});

test('a service whose measured event-loop delay is over the limit should shed with 503 OVERLOADED, Retry-After and a count', async (t) => {
  const { app, metrics } = await guardedApp(t);
  // Overload: the loop turns, but every turn waits far longer than the limit.
  let stop = false;
  const spin = () => {
    busy(4 * MAX_DELAY_MS);
    if (!stop) setImmediate(spin);
  };
  setImmediate(spin);
  const measured = await waitFor('a measured delay over the limit', 10_000, () => {
    const delay = reading(app);
    return Number.isFinite(delay) && delay > MAX_DELAY_MS ? delay : undefined;
  });
  stop = true;
  const res = await app.inject({ method: 'POST', url: '/work' });
  assert.equal(res.statusCode, 503, `delay ${measured} ms: ${res.body}`);
  assert.deepEqual(res.json<{ code: string; reason?: string }>(), {
    code: 'OVERLOADED',
    reason: 'event_loop_delay',
    message: res.json<{ message: string }>().message,
  });
  assert.equal(res.headers['retry-after'], '3');
  assert.equal(await shedCount(metrics), 1);
  // Operational routes answer whatever the load.
  assert.equal((await app.inject({ url: '/healthz' })).statusCode, 200);
});

test('a request that arrives while the limit of requests in flight is reached should be shed with 503 OVERLOADED naming the reason', async (t) => {
  const metrics = createMetricsRegistry('overload-test');
  const app = serviceShell({ logger: createLogger('overload-test', 'silent'), metrics, checks: {} });
  t.after(() => app.close());
  await installOverloadProtection(app, { maxEventLoopDelayMs: 0, maxInFlight: 1, retryAfterSeconds: 2 }, metrics);
  let release = (): void => undefined;
  let entered = (): void => undefined;
  const inFlight = new Promise<void>((resolve) => (entered = resolve));
  app.post('/work', async () => {
    const released = new Promise<void>((resolve) => (release = resolve));
    entered();
    await released;
    return { done: true };
  });
  const first = app.inject({ method: 'POST', url: '/work' });
  await inFlight;
  const res = await app.inject({ method: 'POST', url: '/work' });
  release();
  assert.equal((await first).statusCode, 200);
  assert.equal(res.statusCode, 503, res.body);
  assert.deepEqual(
    [res.json<{ code: string }>().code, res.json<{ reason?: string }>().reason, res.headers['retry-after']],
    ['OVERLOADED', 'in_flight', '2'],
  );
  assert.equal(await shedCount(metrics, 'in_flight'), 1);
});
