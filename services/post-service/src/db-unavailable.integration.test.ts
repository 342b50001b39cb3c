import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { apiTestbed } from '@ripple/service/testbed';
import { waitUntil } from '@ripple/testing';
import { buildApp } from './app.js';
import { createDb, transaction } from './db.js';
import type { Db } from './db.js';

// Transient database trouble on any route, reads included (they query outside a transaction):
// a fast 503 with Retry-After and a code, never a 500, against the real PostgreSQL.
const migrationsDir = fileURLToPath(new URL('../prisma/migrations', import.meta.url));
const overload = { maxEventLoopDelayMs: 0, maxInFlight: 0, retryAfterSeconds: 3 };
/** A post id nobody wrote: a free database answers 404 POST_NOT_FOUND. */
const NO_POST = '0190a0a0-0000-7000-8000-000000000000';

async function appOn(t: TestContext, createDbFor: (url: string) => Db) {
  const bed = await apiTestbed({ name: 'post-service', migrationsDir, createDb: createDbFor, transaction });
  t.after(() => bed.close());
  const app = await buildApp({ ...bed.deps, overload });
  t.after(() => app.close());
  const call = (method: string, url: string, payload?: object) => bed.call(app, method, url, 'alice', payload);
  return { bed, app, call };
}

test('a read route should answer 503 OVERLOADED with Retry-After, not 500, while no database connection is free', async (t) => {
  // A pool of one connection, and 200 ms of patience for it.
  const { bed, app, call } = await appOn(t, (url) => createDb(url, undefined, { max: 1, timeoutMs: 200 }));
  let release = (): void => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  let holding = false;
  // Another request holds the only connection in an open transaction until the test lets go.
  const held = bed.deps.db.$transaction(
    async (tx) => {
      await tx.$queryRaw`SELECT 1`;
      holding = true;
      await released;
    },
    { timeout: 30_000 },
  );
  t.after(() => {
    release();
    return held;
  });
  await waitUntil('the only connection to be held', 10_000, () => holding);

  for (const url of [`/posts/${NO_POST}`, '/users/alice/posts', '/me/feed']) {
    const busy = await call('GET', url);
    assert.equal(busy.status, 503, `GET ${url}`);
    assert.deepEqual(
      [busy.json<{ code: string }>().code, busy.json<{ reason?: string }>().reason],
      ['OVERLOADED', 'pool_wait'],
      `GET ${url}`,
    );
    assert.equal(busy.headers['retry-after'], '3', `GET ${url}`);
  }
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  assert.match(metrics, /^http_requests_shed_total\{[^}]*reason="pool_wait"[^}]*\} 3$/m, 'the shed reads are counted');

  // The connection is free again: the service answers by itself.
  release();
  await held;
  const free = await call('GET', `/posts/${NO_POST}`);
  assert.deepEqual([free.status, free.json<{ code: string }>().code], [404, 'POST_NOT_FOUND']);
});

test('every route should answer 503 DB_UNAVAILABLE with Retry-After, not 500, while the database cannot be reached', async (t) => {
  // The test database is migrated as usual, but the service's client points at a closed port.
  const { call } = await appOn(t, () => createDb('postgresql://postgres@127.0.0.1:1/unreachable'));
  for (const [method, url, payload] of [
    ['GET', `/posts/${NO_POST}`, undefined],
    ['GET', '/users/alice/posts', undefined],
    ['POST', '/posts', { body: 'hello' }],
    ['PATCH', `/posts/${NO_POST}`, { body: 'edited' }],
  ] as const) {
    const res = await call(method, url, payload);
    assert.deepEqual([res.status, res.json<{ code: string }>().code], [503, 'DB_UNAVAILABLE'], `${method} ${url}`);
    assert.equal(res.headers['retry-after'], '3', `${method} ${url}`);
  }
});

test('the database ending every connection of the service should answer 503 or success, never 500 or a hang, and then recover', async (t) => {
  const { bed, app, call } = await appOn(t, (url) => createDb(url));
  let n = 0;
  /**
   * Eight concurrent POST /posts (half batched statements, half transactions: with an
   * Idempotency-Key) and a read, as `status code`.
   */
  const round = async () => {
    const answers = await Promise.all([
      ...Array.from({ length: 8 }, (_, i) =>
        bed.call(app, 'POST', '/posts', 'alice', { body: `post ${n++}` }, i % 2 === 0 ? null : undefined),
      ),
      call('GET', `/posts/${NO_POST}`),
    ]);
    return answers.map((a) => `${a.status} ${a.status === 201 ? '' : a.json<{ code: string }>().code}`.trim());
  };
  const written = (answers: string[]) => answers.slice(0, 8).every((s) => s === '201');
  // Both pools (Prisma's and the batcher's) hold connections.
  await waitUntil('the service to write', 10_000, async () => written(await round()));
  // Ends every backend of this test's own database (pg_terminate_backend, as a failover or an
  // operator does) while the statements of a round are in flight, then once more after it.
  const killAll = () =>
    bed.deps.db
      .$queryRaw`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`;
  const [inFlight] = await Promise.all([round(), killAll()]);
  await killAll();
  const afterKill = [...inFlight, ...(await round())];
  for (const s of afterKill)
    assert.match(s, /^(201|404 POST_NOT_FOUND|503 (DB_UNAVAILABLE|OVERLOADED))$/, afterKill.join(', '));
  await waitUntil('the service to write again', 10_000, async () => written(await round()));
});
