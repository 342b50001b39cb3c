import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { createEvent, toOutboxMessage } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import {
  createEventConsumer,
  createEventProducer,
  createKafka,
  deleteGroups,
  deleteTopics,
  dlqTopicOf,
  ensureTopics,
} from '@ripple/kafka';
import {
  HISTORY_DEDUPE_WINDOW,
  RedisDepartures,
  RedisFenceTokens,
  RedisHistory,
  RedisRouteLog,
} from '@ripple/registry';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, deleteKeys, runId, testInfra, waitUntil } from '@ripple/testing';
import type { Connection } from './connections.js';
import type { ChannelFrame, LocalHub } from './hub.js';
import { Membership } from './membership.js';
import { Router, consumerHandlers } from './router.js';
import { unitBus, unitMetrics } from './single-node.js';

// The stale owner of a partition, on the real Kafka and Redis: node A is held right before its
// history append (as a process paused by SIGSTOP, a GC or a slow call would be) while node B takes
// its partition over and routes the same events and more than the dedupe window after them.
const logger = createLogger('fence-test', 'silent');
const redis = new Redis(testInfra.redisUrl);
const admin = createKafka({ brokers: testInfra.kafkaBrokers, clientId: 'fence-test', logger });
const cleanups: (() => Promise<unknown>)[] = [];

after(() => cleanupAll(...cleanups.reverse(), () => redis.disconnect()));

function liked(postId: string, seq: number): AnyEvent {
  return createEvent('post.liked', {
    source: 'fence-test',
    data: { postId, postAuthorId: 'u1', userId: `u${seq}`, likeCount: seq, at: new Date().toISOString() },
  });
}

/** `count` events alternating between post:f1 and post:f2, numbered from `from`. */
function events(from: number, count: number): AnyEvent[] {
  return Array.from({ length: count }, (_, i) => liked(`f${((from + i) % 2) + 1}`, from + i));
}

/** A frame a node's sockets were handed: its channel, offset and event id. */
interface Handed {
  readonly node: string;
  readonly channel: string;
  readonly offset: string;
  readonly id: string;
}

/** A one-partition topic, its consumer group and a Redis key prefix of their own, removed after the tests. */
async function scenario(name: string) {
  const run = runId();
  const topic = `test.${run}.${name}`;
  const groupId = topic;
  const prefix = `test:${run}:`;
  cleanups.push(
    () => deleteTopics(admin, [topic, dlqTopicOf(topic)]),
    () => deleteGroups(admin, (group) => group === groupId),
    () => deleteKeys(redis, `${prefix}*`),
  );
  await ensureTopics(admin, [
    { topic, numPartitions: 1, replicationFactor: 1 },
    { topic: dlqTopicOf(topic), numPartitions: 1, replicationFactor: 1 },
  ]);
  const producer = createEventProducer(admin);
  await producer.connect();
  cleanups.push(() => producer.disconnect());
  const publish = (list: readonly AnyEvent[]) => producer.send(list.map((e) => ({ ...toOutboxMessage(e), topic })));
  return { topic, groupId, prefix, producer, publish };
}

/**
 * A gateway node's routing on the real Redis and Kafka: its consumer (fenced by RedisFenceTokens)
 * feeds a Router whose hub records every frame it is handed. `hold` runs before each event is
 * routed (the router's last step before its history append). With `membership`, the node records
 * chat departures after `hold` (as the gateway's `beforeRoute`) and shows it each handed-out frame
 * (as the gateway's hub). The assignor gives the one partition to the member whose id sorts first,
 * and member ids begin with the client id.
 */
async function node(
  at: Awaited<ReturnType<typeof scenario>>,
  name: string,
  clientId: string,
  handed: Handed[],
  hold: (event: AnyEvent) => Promise<void>,
  membership?: Membership,
) {
  const hub = {
    publish: (frame: ChannelFrame) => {
      const { event } = JSON.parse(frame.frame) as { event: { id: string } };
      handed.push({ node: name, channel: frame.channel, offset: frame.offset, id: event.id });
      membership?.observe(frame);
      return 1;
    },
  } as unknown as LocalHub;
  const metrics = unitMetrics();
  const router = new Router({
    nodeId: name,
    hub,
    routes: new RedisRouteLog(redis, at.prefix, { maxLength: 1000, ttlMs: 60_000, leaseMs: 15_000 }),
    bus: unitBus,
    metrics,
    beforeRoute: async (event) => {
      await hold(event);
      await membership?.record(event);
    },
  });
  const tokens = new RedisFenceTokens(redis, at.prefix);
  const consumer = createEventConsumer({
    kafka: createKafka({ brokers: testInfra.kafkaBrokers, clientId, logger }),
    groupId: at.groupId,
    topics: [at.topic],
    logger,
    dlqProducer: at.producer,
    startAt: 'earliest',
    sessionTimeoutMs: 6000,
    rebalanceTimeoutMs: 3000,
    commitIntervalMs: 100,
    ...consumerHandlers(router),
    fenceTokens: () => tokens.next(at.groupId),
  });
  await consumer.start();
  cleanups.push(() => consumer.stop());
  return { metrics };
}

/**
 * A holds its first batch before the append; B takes the partition over and routes it and more
 * than the dedupe window per channel; A goes on; then more events come. With `frozen`, a second
 * batch is published while A holds, so A's consumer waits for the first one too and stops
 * heartbeating (as a stopped process): the group drops A, which rejoins with a new member id once
 * released and, sorting first, gets the partition back. Otherwise A's consumer goes on, rejoins
 * the rebalance B starts, and the partition goes to B, which sorts first.
 */
async function staleOwner(name: string, frozen: boolean) {
  const at = await scenario(name);
  const handed: Handed[] = [];
  const first = events(0, 10);
  const heldIds = new Set(first.map((e) => e.id));
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let held = 0;
  const a = await node(at, 'a', frozen ? 'a-fence-a' : 'z-fence-a', handed, async (event) => {
    if (!heldIds.has(event.id)) return;
    held += 1;
    await gate;
  });
  await at.publish(first);
  await waitUntil('node A holding its first batch', 20_000, () => held > 0);
  const second = frozen ? events(first.length, 10) : [];
  await at.publish(second);

  // B joins: the group rebalances and hands the partition to B.
  await node(at, 'b', frozen ? 'z-fence-b' : 'a-fence-b', handed, () => Promise.resolve());
  // More than the dedupe window per channel after the held events.
  const later = events(first.length + second.length, 2 * (HISTORY_DEDUPE_WINDOW + 20));
  await at.publish(later);
  const routed = [...first, ...second, ...later];
  const handedBy = (n: string, list: readonly AnyEvent[]) => {
    const ids = new Set(handed.filter((h) => h.node === n).map((h) => h.id));
    return list.every((e) => ids.has(e.id));
  };
  await waitUntil('node B routing every event', 30_000, () => handedBy('b', routed));

  // A goes on with its append: refused, so nothing of its batch is delivered.
  release();
  const fenced = async () => (await a.metrics.fencedBatches.get()).values[0]?.value ?? 0;
  await waitUntil(
    'node A refused or routed its batch',
    20_000,
    async () => (await fenced()) > 0 || handed.some((h) => h.node === 'a' && heldIds.has(h.id)),
  );

  // Nothing is lost after it: the partition goes on with its owner.
  const last = events(routed.length, 10);
  await at.publish(last);
  const all: AnyEvent[] = [...routed, ...last];
  await waitUntil('every event handed to a socket', 30_000, () => new Set(handed.map((h) => h.id)).size === all.length);

  assert.deepEqual(
    handed.filter((h) => h.node === 'a' && heldIds.has(h.id)),
    [],
    'the stale owner delivers nothing of its batch',
  );
  assert.equal(held, first.length, 'the fenced batch is routed once (no retry, no one-event fallback)');
  assert.equal(await fenced(), 1, 'one batch fenced');
  /** Every event of `all` reached its channel at one offset, and is once in its history. */
  const verify = async () => {
    const offsets = new Map<string, Set<string>>();
    for (const h of handed) {
      const key = `${h.channel} ${h.id}`;
      offsets.set(key, (offsets.get(key) ?? new Set()).add(h.offset));
    }
    const twice = [...offsets].filter(([, o]) => o.size > 1).map(([key, o]) => `${key} at ${[...o].join(', ')}`);
    assert.deepEqual(twice, [], 'no event reaches a channel at two offsets');
    const history = new RedisHistory(redis, at.prefix, { maxLength: 1000, ttlMs: 60_000 });
    for (const channel of ['post:f1', 'post:f2']) {
      const { epoch } = await history.position(channel);
      const { entries } = await history.since(channel, { offset: '0', epoch }, 1000);
      const ids = entries.map((e) => (JSON.parse(e.payload) as { id: string }).id);
      const expected = all.filter((e) => `post:${(e.data as { postId: string }).postId}` === channel);
      assert.equal(ids.length, expected.length, `${channel}: each event once in history`);
      assert.deepEqual(new Set(ids), new Set(expected.map((e) => e.id)));
    }
  };
  await verify();
  // `all` is what `verify` checks: a test that publishes more adds it there.
  return { handed, all, verify, publish: at.publish };
}

test('a stale owner of a partition held before its history append should append, deliver and commit nothing once a later owner routed its events and more than the dedupe window', async () => {
  await staleOwner('fence-slow', false);
});

test('a frozen owner dropped from its group should have its pending append refused, then take the partition back and go on from the committed offset', async () => {
  const { handed, all, verify, publish } = await staleOwner('fence-frozen', true);
  // A rejoined with a new member id and, sorting first, gets the partition back: an event at a
  // time until A routes one, then nothing twice and nothing lost still.
  await waitUntil('node A routing the partition again', 30_000, async () => {
    const next = events(all.length, 1);
    all.push(...next);
    await publish(next);
    return handed.some((h) => h.node === 'a');
  });
  await waitUntil('every event handed to a socket', 30_000, () => new Set(handed.map((h) => h.id)).size === all.length);
  await verify();
});

function member(type: 'chat.member.joined' | 'chat.member.left', userId: string, at: number): AnyEvent {
  return createEvent(type, {
    source: 'fence-test',
    data: { roomId: 'r1', userId, by: 'owner', at: new Date(at).toISOString() },
  });
}

test('a stale owner whose batch was fenced should leave chat membership as the later owner left it: no older departure, no revocation', async () => {
  const at = await scenario('fence-membership');
  const departures = new RedisDepartures(redis, at.prefix, 60_000);
  /** Node A's one connection: u1, back in room r1 (rejoined after its last departure). */
  const revoked: string[] = [];
  const u1 = {
    id: 'c1',
    userId: 'u1',
    channels: () => ['chat:r1'],
    moveAway: () => undefined,
    revoke: (channel: string) => {
      revoked.push(channel);
      return Promise.resolve();
    },
  } satisfies Connection;
  const membershipOf = (connections: readonly Connection[]) =>
    new Membership({ departures, storeSince: () => Promise.resolve(0), connections: () => connections, logger });
  const handed: Handed[] = [];
  const t0 = Date.parse('2026-01-01T00:00:00.000Z');
  // A holds u1's first departure; B routes it, u1's return, a second departure and a second return.
  const first = [member('chat.member.left', 'u1', t0)];
  const later = [
    member('chat.member.joined', 'u1', t0 + 1000),
    member('chat.member.left', 'u1', t0 + 2000),
    member('chat.member.joined', 'u1', t0 + 3000),
  ];
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let held = 0;
  const a = await node(
    at,
    'a',
    'z-fence-a',
    handed,
    async (event) => {
      if (event.id !== first[0]?.id) return;
      held += 1;
      await gate;
    },
    membershipOf([u1]),
  );
  await at.publish(first);
  await waitUntil('node A holding its batch before its membership marks', 20_000, () => held > 0);
  await node(at, 'b', 'a-fence-b', handed, () => Promise.resolve(), membershipOf([]));
  await at.publish(later);
  const all = [...first, ...later];
  await waitUntil('node B routing every event', 30_000, () =>
    all.every((e) => handed.some((h) => h.node === 'b' && h.id === e.id)),
  );
  const leftAsB = await departures.leftAt('r1', 'u1');
  assert.equal(leftAsB, t0 + 2000, 'the later owner marked the last departure');

  // A goes on: its marks, then its append, refused.
  release();
  const fenced = async () => (await a.metrics.fencedBatches.get()).values[0]?.value ?? 0;
  await waitUntil('node A refused its batch', 20_000, async () => (await fenced()) > 0);

  assert.equal(await departures.leftAt('r1', 'u1'), leftAsB, 'the stale departure did not move the mark');
  assert.deepEqual(revoked, [], 'the stale departure ended no subscription');
  assert.deepEqual(
    handed.filter((h) => h.node === 'a'),
    [],
    'the stale owner delivered nothing',
  );
});
