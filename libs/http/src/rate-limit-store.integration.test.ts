import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { cleanupAll, deleteKeys, runId, testInfra, waitUntil } from '@ripple/testing';
import { RATE_LIMIT_LOCAL_SHARE, settledRateLimitStore } from './rate-limit-store.js';
import type { RateLimitStore } from './rate-limit-store.js';

const redis = new Redis(testInfra.redisUrl);
const prefix = `test:${runId()}:rl:`;
const closers: (() => Promise<void>)[] = [];

after(() =>
  cleanupAll(
    ...closers,
    () => deleteKeys(redis, `${prefix}*`),
    () => redis.disconnect(),
  ),
);

/** One replica's store on the shared Redis prefix. */
function replica(settleMs = 20): RateLimitStore {
  const store = settledRateLimitStore(redis, prefix, settleMs);
  closers.push(() => store.close());
  return new store.Store();
}

const incr = (store: RateLimitStore, key: string, max: number, windowMs = 60_000) =>
  new Promise<{ current: number; ttl: number }>((resolve, reject) =>
    store.incr(key, (err, res) => (res ? resolve(res) : reject(err ?? new Error('no result'))), windowMs, max),
  );

const counter = async (key: string) => Number((await redis.get(prefix + key)) ?? 0);

test('a replica far from the limit should count locally and settle its counts in Redis', async () => {
  const store = replica();
  const first = await incr(store, 'far', 1000);
  assert.equal(first.current, 1);
  assert.ok(first.ttl > 59_000 && first.ttl <= 60_000, `ttl ${first.ttl}`);
  assert.equal(await counter('far'), 1, 'the request that opens the window asks Redis');
  const next = [];
  for (let i = 0; i < 5; i++) next.push((await incr(store, 'far', 1000)).current);
  assert.deepEqual(next, [2, 3, 4, 5, 6]);
  await waitUntil('the local counts settled', 5000, async () => (await counter('far')) === 6);
  assert.ok((await redis.pttl(prefix + 'far')) > 0, 'the window expires');
});

test('one replica should admit exactly the limit', async () => {
  const store = replica();
  let admitted = 0;
  for (let i = 0; i < 130; i++) if ((await incr(store, 'one', 100)).current <= 100) admitted++;
  assert.equal(admitted, 100);
});

test('replicas together should admit at most (N − 1) × the local share over the limit', async () => {
  const max = 100;
  const stores = [replica(), replica(), replica()];
  let admitted = 0;
  // Concurrent bursts on every replica, interleaved.
  await Promise.all(
    stores.map(async (store) => {
      for (let i = 0; i < 100; i++) if ((await incr(store, 'many', max)).current <= max) admitted++;
    }),
  );
  assert.ok(admitted >= max, `admitted ${admitted}`);
  assert.ok(admitted <= max + (stores.length - 1) * Math.floor(max * RATE_LIMIT_LOCAL_SHARE), `admitted ${admitted}`);
  await waitUntil('every request counted in Redis', 5000, async () => (await counter('many')) === 300);
});

test('closing should add the counts still pending to Redis', async () => {
  const store = settledRateLimitStore(redis, prefix, 60_000);
  const s = new store.Store();
  for (let i = 0; i < 4; i++) await incr(s, 'closing', 1000);
  assert.equal(await counter('closing'), 1);
  await store.close();
  assert.equal(await counter('closing'), 4);
});

test('a new window should start once the old one ended', async () => {
  const store = replica();
  for (let i = 0; i < 3; i++) await incr(store, 'window', 2, 300);
  assert.equal((await incr(store, 'window', 2, 300)).current, 4, 'over the limit in the first window');
  await waitUntil('the window ended', 5000, async () => (await redis.exists(prefix + 'window')) === 0);
  assert.equal((await incr(store, 'window', 2, 300)).current, 1);
});
