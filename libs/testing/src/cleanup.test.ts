import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cleanupAll } from './index.js';

interface Handle {
  stop(): Promise<void>;
}

test('cleanupAll should run every step in order, waiting for each, and resolve when none failed', async () => {
  const ran: string[] = [];
  await cleanupAll(
    async () => {
      await new Promise((resolve) => setImmediate(resolve));
      ran.push('first');
    },
    () => ran.push('second'),
    () => Promise.resolve(ran.push('third')),
  );
  assert.deepEqual(ran, ['first', 'second', 'third']);
});

test('cleanupAll should skip steps and handles a failed set-up left undefined', async () => {
  const ran: string[] = [];
  let never: Handle | undefined;
  const present: Handle = {
    stop: () => {
      ran.push('present');
      return Promise.resolve();
    },
  };
  await cleanupAll(
    undefined,
    null,
    false,
    () => never?.stop(),
    never && (() => never.stop()),
    () => present.stop(),
  );
  assert.deepEqual(ran, ['present']);
});

test('cleanupAll should run the steps after one that throws and reject with every error, in order', async () => {
  const ran: string[] = [];
  const first = new Error('gateway did not stop');
  const err = await cleanupAll(
    () => {
      throw first;
    },
    () => ran.push('after a throw'),
    () => Promise.reject(new TypeError('topics not deleted')),
    () => ran.push('after a rejection'),
    () => {
      throw new RangeError('keys not removed');
    },
    () => Promise.resolve(ran.push('last')),
  ).then(
    () => assert.fail('cleanupAll resolved although steps failed'),
    (e: unknown) => e,
  );
  assert.deepEqual(ran, ['after a throw', 'after a rejection', 'last']);
  assert.ok(err instanceof AggregateError);
  assert.equal(err.errors.length, 3);
  assert.equal(err.errors[0], first);
  assert.ok(err.errors[1] instanceof TypeError);
  assert.ok(err.errors[2] instanceof RangeError);
  assert.equal(err.message, '3 of 6 clean-up steps failed: gateway did not stop; topics not deleted; keys not removed');
});
