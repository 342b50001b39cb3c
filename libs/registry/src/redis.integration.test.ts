import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { cleanupAll, deleteKeys, registryCompleteIn, runId, testInfra, waitUntil } from '@ripple/testing';
import {
  LeasedDirectory,
  MemoryHistory,
  RedisConnectLog,
  RedisDepartures,
  RedisFenceTokens,
  RedisHistory,
  RedisLeasedSets,
  RedisNodeRoster,
  RedisRouteLog,
} from './index.js';
import {
  connectLogContract,
  departuresContract,
  directoryContract,
  fenceTokensContract,
  historyContract,
  rosterContract,
  routeLogContract,
} from './contract.js';
import { HISTORY_DEDUPE_WINDOW } from './history.js';
import type { HistoryAppend } from './history.js';
import { RENEW_CHUNK } from './leased-set.js';
import { HISTORY_TTL_SLACK, historyAppendKeys } from './redis-history.js';

const redis = new Redis(testInfra.redisUrl);
const prefixes: string[] = [];

after(() =>
  cleanupAll(
    ...prefixes.map((prefix) => () => deleteKeys(redis, `${prefix}*`)),
    () => redis.disconnect(),
    ...claimers.map((c) => () => c.disconnect()),
  ),
);

async function redisNow(): Promise<number> {
  const [seconds, micros] = await redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

const claimers: Redis[] = [];
function claimer(): Redis {
  const connection = new Redis(testInfra.redisUrl);
  claimers.push(connection);
  return connection;
}

function prefix(): string {
  const p = `test:${runId()}:`;
  prefixes.push(p);
  return p;
}

directoryContract('redis', () => {
  const p = prefix();
  const leaseMs = 300;
  const sets = new RedisLeasedSets(redis);
  return Promise.resolve({
    forNode: (nodeId: string) => new LeasedDirectory(sets, p, nodeId, leaseMs),
    wipe: async () => {
      await deleteKeys(redis, `${p}*`);
    },
    // Real Redis time has to pass for leases to run out.
    expire: () => new Promise<void>((resolve) => setTimeout(resolve, leaseMs + 50)),
  });
});

test('redis leased sets should renew a heartbeat of many keys a bounded pipeline at a time', async (t) => {
  const p = prefix();
  const connection = new Redis(testInfra.redisUrl);
  t.after(() => connection.disconnect());
  const sizes: number[] = [];
  const pipeline = connection.pipeline.bind(connection);
  connection.pipeline = (...args: Parameters<Redis['pipeline']>) => {
    const queued = pipeline(...args);
    const exec = queued.exec.bind(queued);
    queued.exec = (...execArgs: Parameters<typeof exec>) => {
      sizes.push(queued.length);
      return exec(...execArgs);
    };
    return queued;
  };
  const sets = new RedisLeasedSets(connection);
  const keys = Array.from({ length: 2 * RENEW_CHUNK + 1 }, (_, i) => `${p}set:{${i}}`);
  await sets.addMany(
    keys.map((key, i) => ({ key, members: [`m${i}`] })),
    60_000,
  );
  assert.deepEqual(sizes, [RENEW_CHUNK, RENEW_CHUNK, 1], 'no round trip carries more than RENEW_CHUNK keys');
  const live = await sets.liveMany(keys);
  assert.deepEqual(
    live,
    keys.map((_, i) => [`m${i}`]),
    'every key was renewed',
  );
});

historyContract('redis', (maxLength) => {
  const p = prefix();
  return Promise.resolve({
    history: new RedisHistory(redis, p, { maxLength, ttlMs: 60_000 }),
    lose: async (channel: string) => {
      await redis.del(`${p}history:{${channel}}`, `${p}history-meta:{${channel}}`);
    },
  });
});

fenceTokensContract('redis', () => {
  const p = prefix();
  return Promise.resolve({
    issuers: [new RedisFenceTokens(redis, p), new RedisFenceTokens(claimer(), p)],
    lose: async (scope: string) => {
      await redis.del(`${p}fence-token:{${scope}}`);
    },
  });
});

routeLogContract('redis', () => {
  const p = prefix();
  const leaseMs = 300;
  const options = { maxLength: 1000, ttlMs: 60_000 };
  const sets = new RedisLeasedSets(redis);
  return Promise.resolve({
    routes: new RedisRouteLog(redis, p, { ...options, leaseMs }),
    history: new RedisHistory(redis, p, options),
    forNode: (nodeId: string) => new LeasedDirectory(sets, p, nodeId, leaseMs),
    expire: () => new Promise<void>((resolve) => setTimeout(resolve, leaseMs + 50)),
  });
});

// As on Redis Cluster: one script call per slot, and small calls, so a batch spans many.
routeLogContract('redis, one slot per call', () => {
  const p = prefix();
  const leaseMs = 300;
  const options = { maxLength: 1000, ttlMs: 60_000 };
  const sets = new RedisLeasedSets(redis);
  return Promise.resolve({
    routes: new RedisRouteLog(redis, p, {
      ...options,
      leaseMs,
      crossSlot: false,
      channelsPerCall: 3,
      entriesPerCall: 4,
    }),
    history: new RedisHistory(redis, p, options),
    forNode: (nodeId: string) => new LeasedDirectory(sets, p, nodeId, leaseMs),
    expire: () => new Promise<void>((resolve) => setTimeout(resolve, leaseMs + 50)),
  });
});

routeLogContract('redis, small calls', () => {
  const p = prefix();
  const leaseMs = 300;
  const options = { maxLength: 1000, ttlMs: 60_000 };
  const sets = new RedisLeasedSets(redis);
  return Promise.resolve({
    routes: new RedisRouteLog(redis, p, { ...options, leaseMs, channelsPerCall: 7, entriesPerCall: 10 }),
    history: new RedisHistory(redis, p, options),
    forNode: (nodeId: string) => new LeasedDirectory(sets, p, nodeId, leaseMs),
    expire: () => new Promise<void>((resolve) => setTimeout(resolve, leaseMs + 50)),
  });
});

connectLogContract('redis', () => {
  const p = prefix();
  const leaseMs = 15_000;
  const options = { maxLength: 1000, ttlMs: 60_000 };
  return Promise.resolve({
    connects: new RedisConnectLog(redis, p, { ...options, leaseMs, presenceLeaseMs: leaseMs }),
    history: new RedisHistory(redis, p, options),
    forNode: (nodeId: string) => new LeasedDirectory(new RedisLeasedSets(redis), p, nodeId, leaseMs),
    roster: new RedisNodeRoster(redis, p, leaseMs),
  });
});

test('redis: connect log should lease presence for the presence lease, not the directory’s shorter one', async () => {
  const p = prefix();
  const [leaseMs, presenceLeaseMs] = [300, 5_000];
  const connects = new RedisConnectLog(redis, p, { maxLength: 1000, ttlMs: 60_000, leaseMs, presenceLeaseMs });
  const directory = new LeasedDirectory(new RedisLeasedSets(redis), p, 'x', leaseMs, presenceLeaseMs);
  await connects.open({ nodeId: 'a', userId: 'u1', connectionId: 'c1', channel: 'user:u1', holdChannel: true });
  // Past the directory's lease the channel's holder has lapsed (node 'a' never renewed it) ...
  await waitUntil('the holder lease to lapse', 5_000, async () => (await directory.nodesFor('user:u1')).length === 0);
  // ... while the connection is still present: its heartbeat renews it once per presence lease.
  assert.deepEqual(await directory.connectionsOf('u1'), ['c1']);
});

test('redis: the testing helper registryCompleteIn should agree with the directory on when the registry is complete', async () => {
  const p = prefix();
  const leaseMs = 300;
  const directory = new LeasedDirectory(new RedisLeasedSets(redis), p, 'a', leaseMs);
  assert.equal(await registryCompleteIn(redis, p, leaseMs), Number.POSITIVE_INFINITY, 'no marker yet');
  assert.equal((await directory.lookup(['c'])).complete, false);
  await directory.refresh({ channels: ['c'], connections: [] });
  const wait = await registryCompleteIn(redis, p, leaseMs);
  assert.ok(wait > 0 && wait <= leaseMs, `${wait} ms left of a ${leaseMs} ms lease`);
  assert.equal((await directory.lookup(['c'])).complete, false, 'a fresh marker: not complete yet');
  await waitUntil('the helper to say complete', 5_000, async () => (await registryCompleteIn(redis, p, leaseMs)) === 0);
  assert.equal((await directory.lookup(['c'])).complete, true, 'the directory agrees once the helper says 0');
});

departuresContract('redis', () => Promise.resolve(new RedisDepartures(redis, prefix(), 60_000)));

rosterContract('redis', () => {
  const p = prefix();
  const leaseMs = 300;
  return Promise.resolve({
    // Each claimer has its own connection, as separate gateway nodes do.
    roster: () => new RedisNodeRoster(claimer(), p, leaseMs),
    graced: () => new RedisNodeRoster(claimer(), p, leaseMs, leaseMs),
    // Leases run on Redis' clock: wait until it moved past one lease.
    expire: async () => {
      const start = await redisNow();
      await waitUntil('one lease on the Redis clock', 5_000, async () => (await redisNow()) > start + leaseMs);
    },
  });
});

test('redis: a channel should keep at most the dedupe window, the trim step and one call of recent ids, whichever way it is appended to', async () => {
  const p = prefix();
  const history = new RedisHistory(redis, p, { maxLength: 1000, ttlMs: 60_000 });
  const routes = new RedisRouteLog(redis, p, { maxLength: 1000, ttlMs: 60_000, leaseMs: 300 });
  const idsOf = (channel: string) => historyAppendKeys(p, channel)[2];
  let largest = 0;
  for (let i = 0; i < HISTORY_DEDUPE_WINDOW * 3; i++) {
    await history.appendMany([{ channel: 'one', payload: `e${i}`, id: `one-${i}` }]);
    await routes.appendAndLookup([
      { channel: 'two', payload: `e${i}`, id: `two-${i}a` },
      { channel: 'two', payload: `e${i}`, id: `two-${i}b` },
    ]);
    largest = Math.max(largest, await redis.zcard(idsOf('one')), await redis.zcard(idsOf('two')));
  }
  // The window, up to 32 offsets past it before a trim, one call's entries (2), and the epoch mark.
  assert.ok(largest <= HISTORY_DEDUPE_WINDOW + 32 + 2 + 1, `${largest} members`);
  assert.ok(largest > HISTORY_DEDUPE_WINDOW, 'the set does fill the window');
  // Trimming does not reach into the window: an id of the last window is still known.
  const [again] = await routes
    .appendAndLookup([{ channel: 'two', payload: 'x', id: `two-${HISTORY_DEDUPE_WINDOW * 3 - 60}a` }])
    .then((r) => r.positions);
  const top = Number((await history.position('two')).offset);
  assert.ok(
    Number(again?.offset) <= top && Number(again?.offset) > top - HISTORY_DEDUPE_WINDOW,
    `${again?.offset} of ${top}`,
  );
});

test('redis: a channel should expire between the TTL and a 16th more after its last event, its TTLs written once per 16th', async () => {
  const p = prefix();
  const ttlMs = 1_600;
  const slackMs = ttlMs / HISTORY_TTL_SLACK;
  const history = new RedisHistory(redis, p, { maxLength: 1000, ttlMs });
  const routes = new RedisRouteLog(redis, p, { maxLength: 1000, ttlMs, leaseMs: 300 });
  const appenders = {
    history: (channel: string, id: string) => history.appendMany([{ channel, payload: id, id }]),
    routes: (channel: string, id: string) => routes.appendAndLookup([{ channel, payload: id, id }]),
  };
  for (const [name, append] of Object.entries(appenders)) {
    const channel = `ttl-${name}`;
    const keys = historyAppendKeys(p, channel);
    const until = async () => Number(await redis.hget(keys[1], 'until'));
    /** Appends one entry; checks that every key then expires no sooner than `ttlMs` from it, nor later than a 16th more. */
    const appendChecked = async (id: string) => {
      const before = await redisNow();
      await append(channel, id);
      const ttls = await Promise.all(keys.map((k) => redis.pttl(k)));
      const after = await redisNow();
      for (const ttl of ttls) {
        assert.ok(
          ttl + (after - before) + 1 >= ttlMs && ttl <= ttlMs + slackMs,
          `${name}: ${ttl} ms left of ${ttls.join(', ')}`,
        );
      }
      return { before, after };
    };
    await appendChecked('e1');
    const first = await until();
    await appendChecked('e2');
    assert.equal(await until(), first, `${name}: a second append within a 16th of the TTL leaves the TTLs alone`);
    await waitUntil('a 16th of the TTL on the Redis clock', 5_000, async () => (await redisNow()) > first - ttlMs);
    await appendChecked('e3');
    assert.ok((await until()) > first, `${name}: once less than the TTL is left, an append writes them again`);
    // Recent ids started over (a set of another epoch, or lost alone) get their TTL at once.
    await redis.del(keys[2]);
    await appendChecked('e4');
    const last = await appendChecked('e5');
    let gone = 0;
    await waitUntil('the channel expires', 5_000, async () => {
      if ((await redis.exists(...keys)) > 0) return false;
      gone = await redisNow();
      return true;
    });
    assert.ok(gone - last.before >= ttlMs, `${name}: expired ${gone - last.before} ms after its last event`);
    assert.ok(
      gone - last.after <= ttlMs + slackMs + 100,
      `${name}: expired ${gone - last.after} ms after its last event`,
    );
  }
});

test('redis: a channel whose stream alone was lost (eviction) should expire again after its next event', async () => {
  const p = prefix();
  const ttlMs = 60_000;
  const history = new RedisHistory(redis, p, { maxLength: 1000, ttlMs });
  const routes = new RedisRouteLog(redis, p, { maxLength: 1000, ttlMs, leaseMs: 300 });
  const appenders = {
    history: (channel: string, id: string) => history.appendMany([{ channel, payload: id, id }]),
    routes: async (channel: string, id: string) =>
      (await routes.appendAndLookup([{ channel, payload: id, id }])).positions,
  };
  for (const [name, append] of Object.entries(appenders)) {
    const channel = `lost-stream-${name}`;
    const keys = historyAppendKeys(p, channel);
    const [first] = await append(channel, 'e1');
    // maxmemory-policy volatile-* or allkeys-* may evict the stream and keep its meta hash and ids.
    await redis.del(keys[0]);
    await append(channel, 'e2');
    const ttls = await Promise.all(keys.map((k) => redis.pttl(k)));
    for (const ttl of ttls)
      assert.ok(ttl > ttlMs - 5_000, `${name}: every key expires by itself (PTTLs ${ttls.join(', ')})`);
    const replay = await history.since(channel, first ?? { offset: '0', epoch: '' }, 10);
    assert.deepEqual(
      replay.entries.map((e) => e.payload),
      ['e2'],
      `${name}: what is left after the lost stream is still replayed`,
    );
  }
});

test('redis: history and the route log should give the offsets the memory history gives, for calls past 1,000 ids with ids repeated within and across calls', async () => {
  const p = prefix();
  const opts = { maxLength: 100_000, ttlMs: 60_000 };
  const memory = new MemoryHistory(opts.maxLength);
  const history = new RedisHistory(redis, p, opts);
  const routes = new RedisRouteLog(redis, p + 'r:', { ...opts, leaseMs: 300 });
  prefixes.push(p + 'r:');
  // A fixed pseudo-random sequence (xorshift), so a failure can be replayed.
  let state = 0x2545f491;
  const next = (n: number) => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) % n;
  };
  let fresh = 0;
  let redelivered = 0;
  const ids: string[] = [];
  for (const size of [1, 3, 1_500, 40, 2_600, 1, 200, 1_001, 7]) {
    const entries = Array.from({ length: size }, () => {
      const channel = next(4) === 0 ? 'post:b' : 'post:a';
      // Half new ids, half one seen before: recently (within the window) or long ago.
      const back = next(2) === 0 ? 0 : 1 + next(next(2) === 0 ? 150 : ids.length + 1);
      const id = back === 0 || back > ids.length ? `e${fresh++}` : (ids[ids.length - back] ?? '');
      ids.push(id);
      return { channel, payload: `${id}@${ids.length}`, id: next(10) === 0 ? undefined : id };
    });
    const want = (await memory.appendMany(entries)).map((e) => e.offset);
    redelivered += entries.length - new Set(entries.map((e, i) => `${e.channel} ${want[i]}`)).size;
    assert.deepEqual(
      (await history.appendMany(entries)).map((e) => e.offset),
      want,
      `history, a call of ${size}`,
    );
    assert.deepEqual(
      (await routes.appendAndLookup(entries)).positions.map((e) => e.offset),
      want,
      `route log, a call of ${size}`,
    );
  }
  assert.ok(redelivered > 100, `${redelivered} entries kept an earlier offset`);
  for (const channel of ['post:a', 'post:b']) {
    const top = (await memory.position(channel)).offset;
    const whole = async (h: RedisHistory) => {
      const { epoch } = await h.position(channel);
      return (await h.since(channel, { offset: '0', epoch }, 100_000)).entries.map((e) => e.payload);
    };
    const memoryWhole = (
      await memory.since(channel, { offset: '0', epoch: (await memory.position(channel)).epoch }, 100_000)
    ).entries.map((e) => e.payload);
    assert.ok(Number(top) > 1_000, `${channel} holds ${top}`);
    assert.deepEqual(await whole(history), memoryWhole, `history replays ${channel} as the memory history`);
    assert.deepEqual(
      await whole(new RedisHistory(redis, p + 'r:', opts)),
      memoryWhole,
      `the route log's history replays ${channel} as the memory history`,
    );
  }
});

test('redis: an append after the meta hash or the recent ids were lost alone should start a new epoch or append again, never dedupe against the old', async () => {
  const p = prefix();
  const ttlMs = 60_000;
  const history = new RedisHistory(redis, p, { maxLength: 1000, ttlMs });
  const routes = new RedisRouteLog(redis, p, { maxLength: 1000, ttlMs, leaseMs: 300 });
  const appenders = {
    history: (entries: HistoryAppend[]) => history.appendMany(entries),
    routes: async (entries: HistoryAppend[]) => (await routes.appendAndLookup(entries)).positions,
  };
  for (const [name, append] of Object.entries(appenders)) {
    const channel = `post:lost-${name}`;
    const keys = historyAppendKeys(p, channel);
    const entry = (id: string) => ({ channel, payload: id, id });
    const [, old] = await append([entry('e1'), entry('e2')]);
    // The meta hash lost, the stream and the ids left: a new epoch, the old ids and entries dropped.
    await redis.del(keys[1]);
    const [again, fresh] = await append([entry('e2'), entry('e3')]);
    assert.ok(again && fresh && old);
    assert.notEqual(again.epoch, old.epoch, `${name}: a new epoch`);
    assert.deepEqual([again.offset, fresh.offset], ['1', '2'], `${name}: e2 appended again in the new epoch`);
    assert.equal((await history.since(channel, old, 100)).recovered, false, `${name}: the old epoch is not recovered`);
    const replay = await history.since(channel, { offset: '0', epoch: again.epoch }, 100);
    assert.deepEqual(
      replay.entries.map((e) => e.payload),
      ['e2', 'e3'],
      `${name}: only the new epoch's entries`,
    );
    assert.deepEqual(await redis.zrange(keys[2], 0, -1), [`@${again.epoch}`, 'e2', 'e3'], `${name}: old ids dropped`);
    // The ids lost, the meta hash left: the same epoch, e3 appended again (at least once), with TTLs.
    await redis.del(keys[2]);
    const [third] = await append([entry('e3')]);
    assert.deepEqual(third, { offset: '3', epoch: again.epoch }, `${name}: e3 appended again in the same epoch`);
    for (const key of keys) assert.ok((await redis.pttl(key)) > ttlMs - 5_000, `${name}: ${key} expires`);
    const resumed = await history.since(channel, fresh ?? again, 100);
    assert.deepEqual(
      [resumed.recovered, resumed.entries.map((e) => e.payload)],
      [true, ['e3']],
      `${name}: recovery after e3's first offset gives its second copy`,
    );
  }
});
