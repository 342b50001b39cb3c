import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createTestRoles, runId, testDatabaseUrl } from '@ripple/testing';
import { dropDatabase, ensureDatabase } from './database.js';
import { applyMigrations } from './migrate.js';

// A service connecting as a role that does not own the schema (no CREATE on it: PostgreSQL 15's
// default for the public schema) with DB_MIGRATE=auto: the owner applied every migration, and
// the service's start must find nothing to do. It failed with "permission denied for schema
// public" on `CREATE TABLE IF NOT EXISTS "_prisma_migrations"`.
test('applying migrations already applied should need no privilege but reading _prisma_migrations', async (t) => {
  const run = runId();
  const url = testDatabaseUrl(`ripple_test_${run}_migrate_role`);
  const role = `ripple_test_${run}_reader`;
  await ensureDatabase(url);
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  const dropRole = await createTestRoles(admin, [role]);
  // The role (the server's) goes before the database, the database last.
  t.after(async () => {
    await dropRole();
    await admin.end();
    await dropDatabase(url);
  });
  const dir = mkdtempSync(join(tmpdir(), 'ripple-migrations-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, '20260101000000_first'));
  writeFileSync(join(dir, '20260101000000_first', 'migration.sql'), 'CREATE TABLE things (id int PRIMARY KEY);');

  assert.deepEqual((await applyMigrations(url, dir)).applied, ['20260101000000_first']);
  await admin.query('REVOKE CREATE ON SCHEMA public FROM PUBLIC');
  await admin.query(`GRANT SELECT ON "_prisma_migrations" TO ${role}`);
  const asRole = new URL(url);
  asRole.username = role;
  assert.deepEqual(await applyMigrations(asRole.toString(), dir), {
    applied: [],
    alreadyApplied: ['20260101000000_first'],
  });
});
