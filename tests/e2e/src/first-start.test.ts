import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// Issue 17, finding 3: replicas of one service that start together on a fresh PostgreSQL (a new
// Deployment, a restored cluster) must all come up: the CREATE DATABASE race is tolerated and
// migrations run once, serialised by an advisory lock.
const iso = isolatedRun('first');
const REPLICAS = 3;
const running: RunningService[] = [];

after(async () => {
  await Promise.all(running.map((s) => s.stop()));
  await iso.cleanup();
});

test('replicas of one service started at once on a new database should all start and apply each migration once', async () => {
  const databaseUrl = iso.databaseUrl('post-service');
  const env = { ...iso.env, DATABASE_URL: databaseUrl, DB_MIGRATE: 'auto' };
  const started = await Promise.allSettled(Array.from({ length: REPLICAS }, () => spawnService('post-service', env)));
  for (const result of started) if (result.status === 'fulfilled') running.push(result.value);
  const failures = started.flatMap((r) => (r.status === 'rejected' ? [String(r.reason)] : []));
  assert.deepEqual(failures, [], 'every replica started');

  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ migration_name: string; runs: string }>(
      'SELECT migration_name, count(*) AS runs FROM "_prisma_migrations" GROUP BY migration_name',
    );
    assert.ok(rows.length > 0, 'migrations were recorded');
    for (const row of rows) assert.equal(row.runs, '1', `${row.migration_name} applied once`);
  } finally {
    await client.end();
  }
  for (const service of running) assert.equal((await fetch(`${service.url}/readyz`)).status, 200, service.url);
});
