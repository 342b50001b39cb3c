import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runId, testDatabaseUrl } from '@ripple/testing';
import { dropDatabase, ensureDatabase } from './database.js';

// Issue 17, finding 3: replicas that start together on a fresh PostgreSQL all run ensureDatabase
// at the same moment; PostgreSQL reports the loser of the CREATE DATABASE race as 23505 (unique
// index on pg_database) or 42P04 (duplicate database), and neither may stop a replica.
test('ensureDatabase called by many processes at once should create the database once and fail none', async (t) => {
  const url = testDatabaseUrl(`race_${runId()}`);
  t.after(() => dropDatabase(url));
  const results = await Promise.allSettled(Array.from({ length: 6 }, () => ensureDatabase(url)));
  const failures = results.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
  assert.deepEqual(failures, []);
  const created = results.filter((r) => r.status === 'fulfilled' && r.value).length;
  assert.equal(created, 1, 'exactly one call created it');
});
