import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import type { RippleError } from '@ripple/errors';
import { HttpErrors } from './error-kinds.js';
import { serviceShell } from './health.js';

function shellFailingWith(
  t: { after(fn: () => Promise<void>): void },
  err: Error,
  classifyError?: (err: unknown) => RippleError | undefined,
) {
  const app = serviceShell({
    logger: createLogger('errors-test', 'silent'),
    metrics: createMetricsRegistry('errors-test'),
    checks: {},
    ...(classifyError && { classifyError }),
  });
  app.get('/fails', () => Promise.reject(err));
  t.after(() => app.close());
  return app;
}

test('an error the service classifies (a database outage) should be answered with its code and status, not 500', async (t) => {
  // What Prisma throws while PostgreSQL restarts (the chaos suite's postgres-restart).
  const down = Object.assign(new Error("Invalid `prisma.post.create()` invocation: Can't reach database server"), {
    code: 'P1001',
  });
  const classify = (err: unknown) =>
    err === down ? HttpErrors.databaseUnavailable.error('the database is unavailable: retry later') : undefined;
  const res = await shellFailingWith(t, down, classify).inject({ url: '/fails' });
  assert.equal(res.statusCode, 503);
  assert.equal(res.json<{ code: string }>().code, 'DB_UNAVAILABLE');
  const other = await shellFailingWith(t, new TypeError('x is undefined'), classify).inject({ url: '/fails' });
  assert.equal(other.statusCode, 500, 'what it does not classify stays a 500');
});

test('any other unexpected error should still be answered 500 INTERNAL', async (t) => {
  const res = await shellFailingWith(t, new TypeError('x is undefined')).inject({ url: '/fails' });
  assert.equal(res.statusCode, 500);
  assert.equal(res.json<{ code: string }>().code, 'INTERNAL');
});

test('every retriable 503 should say when to retry (Retry-After), whatever app answers it', async (t) => {
  // The gateway's drain and readiness refusals had none: only the services' overload hook set it.
  for (const kind of [HttpErrors.draining, HttpErrors.notReady, HttpErrors.databaseUnavailable]) {
    const res = await shellFailingWith(t, kind.error('not now')).inject({ url: '/fails' });
    assert.equal(res.statusCode, 503, kind.code);
    assert.equal(res.headers['retry-after'], '1', kind.code);
  }
  const fault = await shellFailingWith(t, HttpErrors.internal.error('a bug')).inject({ url: '/fails' });
  assert.equal(fault.headers['retry-after'], undefined, 'a 500 is not retried on a schedule');
});
