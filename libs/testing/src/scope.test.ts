import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withCleanup } from './index.js';

// The signals' side (exit 128 + n, a second signal, EPIPE) needs a process of its own: the
// benchmarks' tests in tests/e2e/src/cleanup.test.ts interrupt real ones.

test('withCleanup should run the registered steps once, last registered first, and resolve with the body', async () => {
  const ran: string[] = [];
  const value = await withCleanup('a test', ({ defer }) => {
    defer(() => ran.push('registered first'));
    defer(undefined);
    defer(async () => {
      await new Promise((resolve) => setImmediate(resolve));
      ran.push('registered last');
    });
    return Promise.resolve(42);
  });
  assert.equal(value, 42);
  assert.deepEqual(ran, ['registered last', 'registered first']);
  assert.equal(process.listenerCount('SIGINT'), 0, 'its signal handlers are gone');
});

test('withCleanup should run every step after one fails and reject with the failures when the body succeeded', async () => {
  const ran: string[] = [];
  await assert.rejects(
    withCleanup('a test', ({ defer }) => {
      defer(() => ran.push('first'));
      defer(() => {
        throw new Error('could not drop the database');
      });
      defer(() => ran.push('last'));
      return Promise.resolve();
    }),
    (err: unknown) =>
      err instanceof AggregateError && /1 of 3 clean-up steps failed: could not drop the database/.test(err.message),
  );
  assert.deepEqual(ran, ['last', 'first']);
});

test("withCleanup should clean up after a body that throws and reject with the body's error", async () => {
  const ran: string[] = [];
  await assert.rejects(
    withCleanup('a test', ({ defer }) => {
      defer(() => ran.push('stopped'));
      defer(() => {
        throw new Error('a clean-up failure is printed, not thrown over the body');
      });
      return Promise.reject(new Error('the benchmark failed'));
    }),
    /the benchmark failed/,
  );
  assert.deepEqual(ran, ['stopped']);
});
