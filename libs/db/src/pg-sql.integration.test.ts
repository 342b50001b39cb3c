import { test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { testInfra } from '@ripple/testing';
import { pgSql } from './pg-sql.js';
import { isDatabaseUnavailable } from './unavailable.js';

test('pgSql should bind values as parameters and prepare each call site once per connection', async (t) => {
  const pool = new pg.Pool({ connectionString: testInfra.databaseUrl, max: 1 });
  t.after(() => pool.end());
  const sql = pgSql(pool);
  const quote = "it's $1; DROP TABLE x";
  const read = (n: number, text: string) =>
    sql.$queryRaw<{ n: number; text: string; doubled: string }[]>`
      SELECT ${n}::int AS n, ${text}::text AS text, (${n}::int8 * 2) AS doubled`;
  assert.deepEqual(await read(1, quote), [{ n: 1, text: quote, doubled: '2' }], 'int8 comes back as pg gives it');
  assert.deepEqual(await read(2, 'b'), [{ n: 2, text: 'b', doubled: '4' }]);
  assert.equal(await sql.$executeRaw`SELECT generate_series(1, ${3}::int)`, 3, 'rows affected');
  const prepared = await pool.query<{ statement: string }>(
    "SELECT statement FROM pg_prepared_statements WHERE statement LIKE '%AS doubled%'",
  );
  assert.equal(prepared.rows.length, 1, 'one prepared statement for the call site, reused by the second call');
});

test('pgSql should prepare a statement under the name its first line gives, and refuse one name for two texts', async (t) => {
  const pool = new pg.Pool({ connectionString: testInfra.databaseUrl, max: 1 });
  t.after(() => pool.end());
  const sql = pgSql(pool);
  const rows = await sql.$queryRaw<{ n: number }[]>`
    -- numbers.read
    SELECT ${7}::int AS n`;
  assert.deepEqual(rows, [{ n: 7 }]);
  const prepared = await pool.query<{ name: string }>(
    "SELECT name FROM pg_prepared_statements WHERE statement LIKE '%numbers.read%'",
  );
  assert.deepEqual(
    prepared.rows.map((r) => r.name),
    ['numbers.read'],
    "the name pg's instrumentation gives the span",
  );
  await assert.rejects(
    sql.$queryRaw`
    -- numbers.read
    SELECT ${8}::int AS other`,
    /"numbers\.read" is given to two different statements/,
  );
});

test('pgSql should refuse a statement name PostgreSQL would cut to 63 bytes, before two names meet as one', async (t) => {
  const pool = new pg.Pool({ connectionString: testInfra.databaseUrl, max: 1 });
  t.after(() => pool.end());
  const sql = pgSql(pool);
  // PostgreSQL keeps 63 bytes of a prepared statement's name: on one connection these two would be
  // one name, and the second would fail on the server with 42P05 (already exists).
  for (const read of [
    () => sql.$queryRaw`
      -- comments.select_the_newest_page_of_comments_by_post_and_by_author
      SELECT 1 AS n`,
    () => sql.$queryRaw`
      -- comments.select_the_newest_page_of_comments_by_post_and_by_authors
      SELECT 2 AS n`,
  ]) {
    await assert.rejects(read(), /longer than 63 bytes/);
  }
});

test('pgSql should fail with an error isDatabaseUnavailable recognises when the server is away', async (t) => {
  const pool = new pg.Pool({ connectionString: 'postgresql://postgres@127.0.0.1:1/none', max: 1 });
  t.after(() => pool.end());
  const err = await pgSql(pool).$executeRaw`SELECT 1`.then(
    () => assert.fail('no server listens on port 1'),
    (e: unknown) => e,
  );
  assert.ok(isDatabaseUnavailable(err), String(err));
});
