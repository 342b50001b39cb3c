import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { Topics } from '@ripple/events';
import { waitFor } from '@ripple/testing';
import { callApi, isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// A real post-service past a deliberately tiny capacity: what is over capacity is shed with a fast
// 503 OVERLOADED and Retry-After, never a 500; the service answers 2xx again once load drops.
const iso = isolatedRun('ovl');
const services: RunningService[] = [];

after(async () => {
  await Promise.all(services.map((s) => s.stop()));
  await iso.cleanup();
});

/** At most this many bursts are sent to push the service past its capacity. */
const MAX_BURSTS = 20;

/** Bursts of `burst` concurrent posts until one is shed (at most MAX_BURSTS). */
async function overload(env: Record<string, string>, burst = 60) {
  const post = await spawnService('post-service', {
    ...iso.env,
    DATABASE_URL: iso.databaseUrl(`post-service-${services.length}`),
    RATE_LIMIT_MAX: '1000000',
    ...env,
  });
  services.push(post);
  const token = await signAccessToken(jwtSecret(iso.jwtSecretText), `ovl${iso.run}`);
  // Each with its own Idempotency-Key, so each runs alone in its own transaction: without one,
  // concurrent posts share a statement (group commit) and one connection is enough for them all.
  const create = async (i: number) => {
    const res = await callApi(post, 'POST', '/posts', {
      token,
      body: { body: `post ${i}` },
      headers: { 'idempotency-key': `ovl${iso.run}-${i}` },
    });
    return { status: res.status, retryAfter: res.headers.get('retry-after'), body: res.text };
  };
  const answers: Awaited<ReturnType<typeof create>>[] = [];
  for (let n = 0; n < MAX_BURSTS && !answers.some((a) => a.status === 503); n++) {
    answers.push(...(await Promise.all(Array.from({ length: burst }, (_, i) => create(n * burst + i)))));
  }
  /** Load has dropped: sequential requests, a bounded number, until one is created. */
  const recovers = async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 20 && !statuses.includes(201); i++) statuses.push((await create(-1 - i)).status);
    assert.ok(statuses.includes(201), `no 201 once load dropped: ${statuses.join(',')}`);
    assert.ok(
      statuses.every((s) => s === 201 || s === 503),
      `unexpected status: ${statuses.join(',')}`,
    );
  };
  return { post, answers, recovers };
}

function assertShedGracefully(answers: { status: number; retryAfter: string | null; body: string }[]) {
  const unexpected = answers.filter((a) => a.status !== 201 && a.status !== 503);
  assert.deepEqual(unexpected, [], 'every answer is 201 or 503');
  const shed = answers.filter((a) => a.status === 503);
  assert.ok(shed.length > 0, `no request was shed in ${answers.length}`);
  for (const a of shed) {
    assert.match(a.retryAfter ?? '', /^[1-9][0-9]*$/, 'Retry-After in whole seconds');
    const body = JSON.parse(a.body) as { code: string; message: string };
    assert.equal(body.code, 'OVERLOADED');
    assert.equal(typeof body.message, 'string');
  }
}

async function shedCount(post: RunningService, reason: string): Promise<number> {
  const text = await (await fetch(`${post.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('http_requests_shed_total{') && l.includes(`"${reason}"`));
  return Number(line?.split(' ').at(-1) ?? 0);
}

test('post-service should shed requests over its in-flight limit with 503 OVERLOADED and recover', async () => {
  const { post, answers, recovers } = await overload({ OVERLOAD_MAX_IN_FLIGHT: '2', OVERLOAD_RETRY_AFTER_S: '2' });
  assertShedGracefully(answers);
  assert.ok(answers.every((a) => a.status !== 503 || a.retryAfter === '2'));
  await recovers();
  assert.ok((await shedCount(post, 'in_flight')) > 0, 'http_requests_shed_total counts the shed requests');
  const health = await fetch(`${post.url}/healthz`);
  assert.equal(health.status, 200);
});

test('post-service should answer 503 OVERLOADED, not 500, when database connections run out', async () => {
  // One connection and little patience for it: 200 concurrent transactions (each at least a
  // commit's fsync) wait past the limit. Not less than 150 ms: on a loaded machine (load average
  // 8–10) a lone request's transaction took longer than the 30 ms this test used to give it, and
  // 20 sequential requests all got 503 after the load had dropped.
  const { post, answers, recovers } = await overload(
    { OVERLOAD_MAX_IN_FLIGHT: '0', DB_POOL_MAX: '1', DB_POOL_TIMEOUT_MS: '150' },
    200,
  );
  assertShedGracefully(answers);
  await recovers();
  assert.ok((await shedCount(post, 'pool_wait')) > 0, 'http_requests_shed_total counts the shed requests');
});

test('post-service should refuse writes with 503 OVERLOADED while its outbox relay falls behind, never reads, and take them once it caught up', async (t) => {
  const databaseUrl = iso.databaseUrl(`post-service-${services.length}`);
  // A relay that publishes one row per batch, and a bound of 200 ms on its lag.
  const post = await spawnService('post-service', {
    ...iso.env,
    DATABASE_URL: databaseUrl,
    RATE_LIMIT_MAX: '1000000',
    OVERLOAD_RETRY_AFTER_S: '3',
    OUTBOX_BATCH_SIZE: '1',
    OUTBOX_SHED_WAIT_MS: '200',
  });
  services.push(post);
  const token = await signAccessToken(jwtSecret(iso.jwtSecretText), `ovl${iso.run}`);
  const create = (i: number) => callApi(post, 'POST', '/posts', { token, body: { body: `post ${i}` } });
  assert.equal((await create(0)).status, 201, 'writes are taken while the relay keeps up');

  // A burst the relay is seconds behind on: 1,500 rows committed 2 s ago, as by writers past its
  // capacity (the service's own relay publishes them, one by one).
  const db = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  t.after(() => db.end());
  await db.query(
    `INSERT INTO outbox (event_id, topic, key, shard, value, headers, created_at)
     SELECT gen_random_uuid(), $1, 'burst-' || i, i % 32, '{}', '{}'::jsonb, now() - interval '2 s'
     FROM generate_series(1, 1500) i`,
    [Topics.post],
  );
  const refused = await waitFor('a write refused', 30_000, async () => {
    const res = await create(1);
    return res.status === 503 ? res : undefined;
  });
  assert.equal(refused.headers.get('retry-after'), '3');
  assert.equal((JSON.parse(refused.text) as { code: string }).code, 'OVERLOADED');
  assert.ok((await shedCount(post, 'outbox_backlog')) > 0, 'http_requests_shed_total counts it');
  // Reads and probes meanwhile: answered, while writes still are not.
  assert.equal((await callApi(post, 'GET', `/users/ovl${iso.run}/posts`, { token })).status, 200);
  assert.equal((await fetch(`${post.url}/readyz`)).status, 200);
  assert.equal((await create(2)).status, 503, 'still behind');

  // Once the relay caught up, writes are taken again, by themselves.
  await waitFor('a write taken again', 60_000, async () => ((await create(3)).status === 201 ? true : undefined));
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
  assert.ok((rows[0]?.n ?? 0) < 100, `the backlog drained (${rows[0]?.n} rows left)`);
});
