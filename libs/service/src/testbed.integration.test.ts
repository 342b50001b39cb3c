import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { testInfra } from '@ripple/testing';
import { apiTestbed } from './testbed.js';

/** Names of the databases on the test server that start with `prefix`. */
async function databasesNamed(prefix: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: testInfra.databaseUrl });
  await client.connect();
  try {
    const rows = await client.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE starts_with(datname, $1)',
      [prefix],
    );
    return rows.rows.map((r) => r.datname);
  } finally {
    await client.end();
  }
}

test('apiTestbed should drop its database when its own set-up fails after creating it', async (t) => {
  const name = `testbed-leak-${randomBytes(4).toString('hex')}`;
  // No migrations: the set-up gets past them to what follows.
  const noMigrations = await mkdtemp(join(tmpdir(), 'ripple-no-migrations-'));
  t.after(() => rm(noMigrations, { recursive: true }));
  await assert.rejects(
    apiTestbed({
      name,
      migrationsDir: noMigrations,
      createDb: () => {
        throw new Error('the client could not be made');
      },
      transaction: () => {
        throw new Error('never reached');
      },
    }),
    /the client could not be made/,
  );
  assert.deepEqual(await databasesNamed(name.replace(/-/g, '_')), []);
});
