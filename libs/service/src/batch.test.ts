import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RawSql } from '@ripple/db';
import { RippleError } from '@ripple/errors';
import { createMetricsRegistry } from '@ripple/telemetry';
import { statementBatcher } from './batch.js';

/** A stand-in for a connection pool: statements are never run, only recognised by identity. */
const fakeSql = (): RawSql => ({
  $executeRaw: () => Promise.reject(new Error('not a database')),
  $queryRaw: () => Promise.reject(new Error('not a database')),
});

/** A promise and its resolver, to hold a statement "in flight" until the test lets it finish. */
function gate(): { promise: Promise<void>; open: () => void } {
  let open = () => {};
  const promise = new Promise<void>((resolve) => (open = resolve));
  return { promise, open };
}

test('items handed in while a statement is in flight should go together in the next statement, in order', async () => {
  const pool = fakeSql();
  const batch = statementBatcher(pool, createMetricsRegistry('test'), { maxInFlight: 1 });
  const statements: number[][] = [];
  const first = gate();
  const write = batch('numbers', async (sql, items: readonly number[]) => {
    assert.equal(sql, pool);
    statements.push([...items]);
    if (statements.length === 1) await first.promise;
    return items.map((n) => n * 10);
  });

  const a = write(pool, 1);
  await new Promise((resolve) => setImmediate(resolve));
  // The first statement is in flight: these wait for it and then share one statement.
  const rest = [write(pool, 2), write(pool, 3), write(pool, 4)];
  first.open();
  assert.deepEqual(await Promise.all([a, ...rest]), [10, 20, 30, 40]);
  assert.deepEqual(statements, [[1], [2, 3, 4]]);
});

test('an item should fail alone when its slot holds an error', async () => {
  const pool = fakeSql();
  const write = statementBatcher(pool, createMetricsRegistry('test'))('odd', (_sql, items: readonly number[]) =>
    Promise.resolve(items.map((n) => (n % 2 === 0 ? n : new Error(`${n} is odd`)))),
  );
  const results = await Promise.allSettled([write(pool, 1), write(pool, 2)]);
  assert.equal(results[0].status, 'rejected');
  assert.deepEqual(results[1], { status: 'fulfilled', value: 2 });
});

test('a batch failing for one bad item should be retried item by item, so the others still get written', async () => {
  const pool = fakeSql();
  const statements: number[][] = [];
  const write = statementBatcher(pool, createMetricsRegistry('test'), { maxInFlight: 1 })(
    'poison',
    (_sql, items: readonly number[]) => {
      statements.push([...items]);
      if (items.includes(13)) return Promise.reject(new Error('invalid input syntax'));
      return Promise.resolve(items);
    },
  );
  const results = await Promise.allSettled([write(pool, 12), write(pool, 13), write(pool, 14)]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  assert.deepEqual(statements, [[12, 13, 14], [12], [13], [14]]);
});

test('a coded failure (database unavailable, overloaded) should fail the whole batch without retries', async () => {
  const pool = fakeSql();
  let statements = 0;
  const write = statementBatcher(pool, createMetricsRegistry('test'))('down', () => {
    statements++;
    return Promise.reject(
      new RippleError('DB_UNAVAILABLE', 'the database is unavailable', { status: 503, retriable: true }),
    );
  });
  const results = await Promise.allSettled([write(pool, 1), write(pool, 2), write(pool, 3)]);
  for (const r of results) assert.equal(r.status === 'rejected' && (r.reason as RippleError).code, 'DB_UNAVAILABLE');
  assert.equal(statements, 1);
});

test('an item written in a transaction should run alone in that transaction, not join a batch', async () => {
  const pool = fakeSql();
  const tx = fakeSql();
  const seen: [RawSql, number[]][] = [];
  const write = statementBatcher(pool, createMetricsRegistry('test'))('tx', (sql, items: readonly number[]) => {
    seen.push([sql, [...items]]);
    return Promise.resolve(items);
  });
  assert.equal(await write(tx, 7), 7);
  assert.equal(seen.length, 1);
  assert.equal(seen[0]?.[0], tx);
});

test('a batch should hold at most maxBatch items', async () => {
  const pool = fakeSql();
  const statements: number[][] = [];
  const first = gate();
  const write = statementBatcher(pool, createMetricsRegistry('test'), { maxInFlight: 1, maxBatch: 2 })(
    'small',
    async (_sql, items: readonly number[]) => {
      statements.push([...items]);
      if (statements.length === 1) await first.promise;
      return items;
    },
  );
  const a = write(pool, 1);
  await new Promise((resolve) => setImmediate(resolve));
  const rest = [2, 3, 4, 5, 6].map((n) => write(pool, n));
  first.open();
  await Promise.all([a, ...rest]);
  assert.deepEqual(statements, [[1], [2, 3], [4, 5], [6]]);
});
