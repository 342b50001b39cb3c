import { test } from 'node:test';
import assert from 'node:assert/strict';
import { transientDbError } from './prisma.js';

const withCode = (message: string, code: string, cause?: unknown) =>
  Object.assign(new Error(message, { cause }), { code });

test('a database that cannot be reached should be a 503 DB_UNAVAILABLE, whatever wraps the error', () => {
  // Shapes seen from post-service while its PostgreSQL restarted (the chaos suite's postgres-restart).
  const seen = [
    withCode("Invalid `prisma.post.findMany()` invocation:\n\nCan't reach database server at 127.0.0.1:40813", 'P1001'),
    new Error('Raw query failed. Code: `N/A`. Message: `Server has closed the connection.`'),
    withCode('terminating connection due to administrator command', '57P01'),
    new Error('query failed', { cause: withCode('Connection terminated unexpectedly', '08006') }),
    withCode('sorry, too many clients already', '53300'),
  ];
  for (const err of seen) {
    const coded = transientDbError(err);
    assert.equal(coded?.code, 'DB_UNAVAILABLE', err.message);
    assert.equal(coded?.status, 503);
  }
});

test('no pooled connection free, none opened, or a transaction timed out should be a 503 OVERLOADED (load, not an outage)', () => {
  const waits = [
    withCode('Timed out fetching a new connection from the connection pool.', 'P2024'),
    new Error('query failed', { cause: new Error('timeout exceeded when trying to connect') }),
    // Opening a new connection past DB_POOL_TIMEOUT_MS: a starved process or database, taken as load.
    new Error('query failed', { cause: new Error('Connection terminated due to connection timeout') }),
    withCode('Transaction API error: Unable to start a transaction in the given time.', 'P2028'),
    // Seen under load (load average 40): an interactive transaction that ran past its 5 s timeout.
    withCode(
      'Transaction API error: Transaction already closed: A query cannot be executed on an expired transaction. The timeout for this transaction was 5000 ms, however 5012 ms passed since the start of the transaction.',
      'P2028',
    ),
  ];
  for (const err of waits) assert.equal(transientDbError(err)?.code, 'OVERLOADED', err.message);
});

test('a failing query on a reachable database should stay what it is', () => {
  for (const err of [withCode('duplicate key value', '23505'), new TypeError('x is undefined')]) {
    assert.equal(transientDbError(err), undefined, err.message);
  }
});
