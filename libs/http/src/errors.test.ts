import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { serviceShell } from './health.js';

function shellFailingWith(t: { after(fn: () => Promise<void>): void }, err: Error) {
  const app = serviceShell({
    logger: createLogger('errors-test', 'silent'),
    metrics: createMetricsRegistry('errors-test'),
    checks: {},
  });
  app.get('/fails', () => Promise.reject(err));
  t.after(() => app.close());
  return app;
}

test('a request that found the database down should be answered 503 DB_UNAVAILABLE with Retry-After, not 500', async (t) => {
  // What Prisma throws while PostgreSQL restarts (the chaos suite's postgres-restart).
  const down = Object.assign(new Error("Invalid `prisma.post.create()` invocation: Can't reach database server"), {
    code: 'P1001',
  });
  const res = await shellFailingWith(t, down).inject({ url: '/fails' });
  assert.equal(res.statusCode, 503);
  assert.equal(res.headers['retry-after'], '1');
  assert.equal(res.json<{ code: string }>().code, 'DB_UNAVAILABLE');
});

test('any other unexpected error should still be answered 500 INTERNAL', async (t) => {
  const res = await shellFailingWith(t, new TypeError('x is undefined')).inject({ url: '/fails' });
  assert.equal(res.statusCode, 500);
  assert.equal(res.json<{ code: string }>().code, 'INTERNAL');
});
