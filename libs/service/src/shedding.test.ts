import { test } from 'node:test';
import assert from 'node:assert/strict';
import { installOverloadProtection, serviceShell } from '@ripple/http';
import type { Mutations } from '@ripple/http';
import type { RawSql } from '@ripple/db';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import type { Registry } from '@ripple/telemetry';
import { backlogShedding } from './shedding.js';

/** A mutation runner that answers with what `work` returns; in-memory, for the shedding in front of it. */
const answering: Mutations<RawSql> = {
  run: async (_request, reply, status, work) => reply.status(status).send(await work({} as RawSql)),
  single: async (_request, reply, status, work) => reply.status(status).send(await work({} as RawSql)),
};

async function app(t: { after(fn: () => Promise<void>): void }, backlogged: () => boolean) {
  const metrics = createMetricsRegistry('shedding-test');
  const shell = serviceShell({ logger: createLogger('shedding-test', 'silent'), metrics, checks: {} });
  t.after(() => shell.close());
  await installOverloadProtection(shell, { maxEventLoopDelayMs: 0, maxInFlight: 0, retryAfterSeconds: 2 }, metrics);
  const mutations = backlogShedding(answering, backlogged);
  let written = 0;
  shell.post('/things', (request, reply) =>
    mutations.run(request, reply, 201, () => Promise.resolve({ n: ++written })),
  );
  shell.patch('/things', (request, reply) =>
    mutations.single(request, reply, 200, () => Promise.resolve({ n: ++written })),
  );
  shell.get('/things', () => ({ n: written }));
  await shell.ready();
  return { app: shell, metrics, written: () => written };
}

const shedCount = async (metrics: Registry) =>
  (await metrics.getSingleMetric('http_requests_shed_total')?.get())?.values.find(
    (v) => v.labels['reason'] === 'outbox_backlog',
  )?.value;

test('a write should be refused with 503 OVERLOADED and Retry-After while the outbox is backlogged, and taken again after', async (t) => {
  let backlogged = true;
  const { app: service, metrics, written } = await app(t, () => backlogged);
  for (const method of ['POST', 'PATCH'] as const) {
    const res = await service.inject({ method, url: '/things' });
    assert.equal(res.statusCode, 503, method);
    assert.deepEqual(
      [res.json<{ code: string }>().code, res.json<{ reason?: string }>().reason],
      ['OVERLOADED', 'outbox_backlog'],
    );
    assert.equal(res.headers['retry-after'], '2');
  }
  assert.equal(written(), 0, 'no work ran for a refused write');
  assert.equal(await shedCount(metrics), 2);
  backlogged = false;
  assert.equal((await service.inject({ method: 'POST', url: '/things' })).statusCode, 201);
  assert.equal((await service.inject({ method: 'PATCH', url: '/things' })).statusCode, 200);
  assert.equal(written(), 2);
});

test('reads and probes should never be refused for the outbox backlog', async (t) => {
  const { app: service, metrics } = await app(t, () => true);
  for (const url of ['/things', '/healthz', '/readyz', '/metrics']) {
    assert.equal((await service.inject({ method: 'GET', url })).statusCode, 200, url);
  }
  assert.equal(await shedCount(metrics), 0);
});
