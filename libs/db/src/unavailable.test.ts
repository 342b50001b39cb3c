import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isDatabaseUnavailable } from './unavailable.js';

const withCode = (message: string, code: string, cause?: unknown) =>
  Object.assign(new Error(message, { cause }), { code });

test('a database that cannot be reached should count as unavailable, whatever wraps the error', () => {
  // Shapes seen from post-service while its PostgreSQL restarted (Prisma 7 over @prisma/adapter-pg).
  const seen = [
    withCode("Invalid `prisma.post.findMany()` invocation:\n\nCan't reach database server at 127.0.0.1:40813", 'P1001'),
    new Error("Raw query failed. Code: `N/A`. Message: `Can't reach database server at 127.0.0.1:40813`"),
    new Error('Client has encountered a connection error and is not queryable'),
    new Error('Raw query failed. Code: `N/A`. Message: `Server has closed the connection.`'),
    withCode('terminating connection due to administrator command', '57P01'),
    withCode('the database system is starting up', '57P03'),
    withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'),
    new Error('query failed', { cause: withCode('Connection terminated unexpectedly', '08006') }),
  ];
  for (const err of seen) assert.equal(isDatabaseUnavailable(err), true, err.message);
});

test('a failing query on a reachable database should not count as unavailable', () => {
  const bugs = [
    withCode('duplicate key value violates unique constraint "posts_pkey"', '23505'),
    withCode('syntax error at or near "SELEC"', '42601'),
    withCode('Record to update not found.', 'P2025'),
    new TypeError("Cannot read properties of undefined (reading 'id')"),
    'a string',
    undefined,
  ];
  for (const err of bugs) assert.equal(isDatabaseUnavailable(err), false, String(err));
});
