import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { Topics } from '@ripple/events';
import { createEventProducer, createKafka, deleteTopics, dlqTopicOf } from '@ripple/kafka';
import type { EventProducer } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, deleteKeys, runId, testInfra, waitFor, waitUntil } from '@ripple/testing';
import { callApi, connectClient, openSse, publishPostEvents, spawnService } from './harness.js';
import type { RunningService, TestClient } from './harness.js';
import { expectReleased, isRunning } from './registry-check.js';

// Gateways as separate processes on real Kafka and Redis: cross-node routing, recovery, crash,
// drain, slow consumers, SSE, and malformed input.
const run = runId();
const JWT_SECRET = `gw-secret-${run}-0123456789`;
const secret = jwtSecret(JWT_SECRET);
const topicPrefix = `gw.${run}.`;
const redisPrefix = `gw:${run}:`;
const HEARTBEAT_MS = 300;
const env = {
  JWT_SECRET,
  KAFKA_BROKERS: testInfra.kafkaBrokers.join(','),
  KAFKA_TOPIC_PREFIX: topicPrefix,
  KAFKA_TOPIC_PARTITIONS: '4',
  KAFKA_GROUP_ID: `gw.${run}`,
  KAFKA_SESSION_TIMEOUT_MS: '6000',
  REDIS_URL: testInfra.redisUrl,
  REDIS_KEY_PREFIX: redisPrefix,
  REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
  DRAIN_WINDOW_MS: '500',
  WS_SEND_BUFFER_BYTES: '65536',
  WS_RATE_PER_SEC: '10000',
  WS_RATE_BURST: '10000',
  NODE_ENV: 'test',
};

const redis = new Redis(testInfra.redisUrl);
const kafka = createKafka({
  brokers: testInfra.kafkaBrokers,
  clientId: 'gw-e2e',
  logger: createLogger('gw-e2e', 'silent'),
});
let producer: EventProducer;
const nodes: Record<'a' | 'b' | 'c', RunningService> = {} as never;
const clients: TestClient[] = [];

before(async () => {
  nodes.a = await spawnService('fanout-gateway', { ...env, NODE_ID: `a-${run}` });
  nodes.b = await spawnService('fanout-gateway', { ...env, NODE_ID: `b-${run}` });
  nodes.c = await spawnService('fanout-gateway', { ...env, NODE_ID: `c-${run}` });
  producer = createEventProducer(kafka);
  await producer.connect();
});

// Registry leak check: once a test's clients are gone, every live node is back at its baseline
// (no subscription, no live registry entry for a channel).
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const [name, node] of Object.entries(nodes)) {
    if (isRunning(node)) await expectReleased(redis, redisPrefix, node, `${name}-${run}`);
  }
});

after(() => {
  const topics = Object.values(Topics).map((t) => topicPrefix + t);
  return cleanupAll(
    ...clients.map((c) => () => c.close()),
    () => Promise.all(Object.values(nodes).map((n) => n.stop('SIGKILL'))),
    () => producer?.disconnect(),
    () => deleteTopics(kafka, [...topics, ...topics.map(dlqTopicOf)]),
    () => deleteKeys(redis, `${redisPrefix}*`),
    () => redis.disconnect(),
  );
});

const connect = (at: RunningService, userId: string): Promise<TestClient> => connectClient(at, secret, userId, clients);

async function subscribe(client: TestClient, channel: string, since?: { offset: string; epoch: string }) {
  const id = randomBytes(4).toString('hex');
  client.send({ op: 'subscribe', id, channel, ...(since && { since: { offset: since.offset, epoch: since.epoch } }) });
  return client.frame((f) => f.op === 'ack' && f.id === id);
}

/** Publishes `count` post.created events by `authorId`, each on its own post (keyed by the author: one partition). */
function publishPosts(authorId: string, count: number, body = 'x'): Promise<string[]> {
  return publishPostEvents(producer, topicPrefix, authorId, count, body);
}

type EventFrame = { op: 'event'; channel: string; offset: string; epoch: string; event: { id: string } };
function eventsOn(client: TestClient, channel: string): EventFrame[] {
  return client.frames.filter((f): f is EventFrame => f.op === 'event' && f.channel === channel);
}

/**
 * Once the surviving nodes routed `missed` into the channel's history, a client of `userId` on
 * `node` that subscribes with the position it had (`ack`) recovers exactly those events.
 */
async function expectRecoveredOn(
  node: RunningService,
  userId: string,
  channel: string,
  ack: { offset: string; epoch: string },
  missed: string[],
): Promise<void> {
  await waitUntil(
    'the survivors routed everything',
    40_000,
    async () => (await redis.xlen(`${redisPrefix}history:{${channel}}`)) >= missed.length,
  );
  const moved = await connect(node, userId);
  const again = (await subscribe(moved, channel, ack)) as { recovered: boolean };
  assert.equal(again.recovered, true);
  await waitUntil('the missed events', 10_000, () => eventsOn(moved, channel).length >= missed.length);
  assert.deepEqual(
    eventsOn(moved, channel)
      .map((f) => f.event.id)
      .sort(),
    [...missed].sort(),
  );
}

/** The sum of every sample of `name` on `node` (NaN when it has none). */
async function metric(node: RunningService, name: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const samples = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].map((m) => Number(m[1]));
  return samples.length === 0 ? Number.NaN : samples.reduce((a, b) => a + b, 0);
}

test('a client on one node should receive events that other nodes consumed, once each and in offset order', async () => {
  const onA = await connect(nodes.a, 'reader-a');
  const onB = await connect(nodes.b, 'reader-b');
  await subscribe(onA, 'creator:u-cross');
  await subscribe(onB, 'creator:u-cross');
  const ids = await publishPosts('u-cross', 40);
  await waitUntil(
    'all events on both nodes',
    30_000,
    () => eventsOn(onA, 'creator:u-cross').length >= 40 && eventsOn(onB, 'creator:u-cross').length >= 40,
  );
  for (const client of [onA, onB]) {
    const got = eventsOn(client, 'creator:u-cross');
    assert.deepEqual(got.map((f) => f.event.id).sort(), [...ids].sort());
    assert.deepEqual(
      got.map((f) => f.offset),
      Array.from({ length: 40 }, (_, i) => String(i + 1)),
      'every offset once, in order',
    );
  }
  const forwarded =
    (await metric(nodes.a, 'gateway_node_messages_sent_total')) +
    (await metric(nodes.b, 'gateway_node_messages_sent_total')) +
    (await metric(nodes.c, 'gateway_node_messages_sent_total'));
  assert.ok(forwarded > 0, 'some events crossed nodes');
  await waitUntil(
    'the group to commit what it routed',
    20_000,
    async () => (await metric(nodes.a, 'kafka_consumer_lag_messages')) === 0,
  );
});

test('a node that stalled past its registry lease should still deliver what the other nodes routed meanwhile, with no later event to reveal the gap', async () => {
  // Node a is paused past its Kafka session (so b and c consume every partition) and past its
  // registry lease (so they drop it from the channel's holders and route only into history). No
  // event follows, so no later offset reveals the gap to a: it must notice on its own.
  const channel = `creator:u-stall-${run}`;
  const client = await connect(nodes.a, `stalled-${run}`);
  await subscribe(client, channel);
  const pid = nodes.a.process.pid ?? 0;
  process.kill(pid, 'SIGSTOP');
  let published: string[];
  try {
    await new Promise((resolve) => setTimeout(resolve, Number(env.KAFKA_SESSION_TIMEOUT_MS) + 1000));
    published = await publishPosts(`u-stall-${run}`, 10);
    await waitUntil(
      'b and c routed every event',
      30_000,
      async () => (await redis.xlen(`${redisPrefix}history:{${channel}}`)) >= published.length,
    );
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  const live = () => new Set(eventsOn(client, channel).map((f) => f.event.id));
  await waitUntil(
    'every event, or the node telling its client where it lost them',
    20_000,
    () => live().size === published.length || client.frames.some((f) => f.op === 'gap' || f.op === 'reconnect'),
  );
  assert.deepEqual([...live()].sort(), [...published].sort(), 'delivered from history once a noticed its lapse');
  assert.deepEqual(
    eventsOn(client, channel).map((f) => f.offset),
    Array.from({ length: published.length }, (_, i) => String(i + 1)),
    'every offset once, in order',
  );
  assert.ok((await metric(nodes.a, 'gateway_catch_ups_total')) >= 1, 'a counted its catch-up');
});

test('a client that was offline should recover every missed event in order, then continue live without duplicates', async () => {
  const first = await connect(nodes.a, 'recoverer');
  const ack = (await subscribe(first, 'creator:u-rec')) as { offset: string; epoch: string };
  first.close();
  await first.closed();
  const missed = await publishPosts('u-rec', 50);
  // Wait until the gateways routed them: their history holds all 50.
  await waitUntil(
    'the missed events in history',
    30_000,
    async () => (await redis.xlen(`${redisPrefix}history:{creator:u-rec}`)) >= 50,
  );

  const again = await connect(nodes.b, 'recoverer');
  const recovered = (await subscribe(again, 'creator:u-rec', { offset: ack.offset, epoch: ack.epoch })) as {
    recovered: boolean;
    replayed: number;
  };
  assert.equal(recovered.recovered, true);
  assert.equal(recovered.replayed, 50);
  await waitUntil('the replay', 10_000, () => eventsOn(again, 'creator:u-rec').length >= 50);
  const live = await publishPosts('u-rec', 1);
  await waitUntil('the live event', 20_000, () => eventsOn(again, 'creator:u-rec').length >= 51);
  const got = eventsOn(again, 'creator:u-rec');
  assert.deepEqual(
    got
      .slice(0, 50)
      .map((f) => f.event.id)
      .sort(),
    [...missed].sort(),
  );
  assert.equal(got[50]?.event.id, live[0]);
  assert.equal(got.length, 51, 'no duplicate');
  assert.deepEqual(
    got.map((f) => f.offset),
    Array.from({ length: 51 }, (_, i) => String(Number(ack.offset) + i + 1)),
    'in offset order',
  );

  const impossible = (await subscribe(again, 'creator:u-rec-2', { offset: '1', epoch: 'not-the-epoch' })) as {
    recovered: boolean;
  };
  assert.equal(impossible.recovered, false);
});

test('subscribe with since on a brand-new channel should ack a real epoch from which a later event recovers', async () => {
  const channel = `creator:u-fresh-${run}`;
  const first = await connect(nodes.a, 'fresh-reader');
  const ack = (await subscribe(first, channel, { offset: '0', epoch: 'not-an-epoch-yet' })) as {
    offset: string;
    epoch: string;
    recovered: boolean;
  };
  assert.equal(ack.recovered, false);
  assert.match(ack.epoch, /^[0-9a-f]{24}$/);
  first.close();
  const [id] = await publishPosts(`u-fresh-${run}`, 1);
  await waitUntil(
    'the event in history',
    20_000,
    async () => (await redis.xlen(`${redisPrefix}history:{${channel}}`)) >= 1,
  );
  const again = await connect(nodes.b, 'fresh-reader');
  const resumed = (await subscribe(again, channel, { offset: ack.offset, epoch: ack.epoch })) as { recovered: boolean };
  assert.equal(resumed.recovered, true);
  await waitUntil('the replayed event', 10_000, () => eventsOn(again, channel).length >= 1);
  assert.deepEqual(
    eventsOn(again, channel).map((f) => f.event.id),
    [id],
  );
});

test('bad frames should get documented errors and close codes, and random frames should never crash a node', async () => {
  const client = await connect(nodes.a, 'fuzzer');
  const rand = (n: number) => Math.floor(Math.random() * n);
  const pieces = [
    '{',
    '}',
    '"op"',
    ':',
    '"subscribe"',
    '"ping"',
    '"since"',
    '[',
    ']',
    'null',
    '1e309',
    '"\\u0000"',
    ',',
    '"channel"',
    '"user:fuzzer"',
    '{"offset":"1-0"}',
  ];
  for (let i = 0; i < 400; i++) {
    const kind = rand(3);
    if (kind === 0) client.send(Array.from({ length: rand(12) }, () => pieces[rand(pieces.length)]).join(''));
    else if (kind === 1)
      client.send({
        op: ['subscribe', 'unsubscribe', 'ping', 'refresh', 'x'][rand(5)],
        channel: ['post:1', 'user:other', 'chat:r', '', 7][rand(5)],
        since: [undefined, { offset: 'a', epoch: 1 }, { offset: '1-0', epoch: 'e' }][rand(3)],
        token: [undefined, 'junk'][rand(2)],
      });
    else client.socket.send(randomBytes(rand(64)));
  }
  client.send({ op: 'ping', id: 'still-alive' });
  await client.frame((f) => f.op === 'pong' && f.id === 'still-alive');
  const codes = new Set(client.frames.filter((f) => f.op === 'error').map((f) => f.code));
  for (const code of ['GW_BAD_JSON', 'GW_UNKNOWN_OP', 'GW_BAD_FRAME', 'GW_BINARY_FRAME'])
    assert.ok(codes.has(code), code);
  // A frame over the 64 KiB limit closes the socket with 1009.
  const big = await connect(nodes.a, 'big-sender');
  big.send({ op: 'ping', id: 'x'.repeat(70_000) });
  assert.equal(await big.closed(), 1009);
  assert.equal((await fetch(`${nodes.a.url}/healthz`)).status, 200);
});

test('a slow consumer should be closed with 4009 while the node memory stays bounded', async () => {
  const slow = await connect(nodes.a, 'slowpoke');
  await subscribe(slow, 'creator:u-slow');
  // Stop reading: the kernel buffers fill, then the node's per-socket buffer.
  (slow.socket as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
  const before = await metric(nodes.a, 'gateway_slow_consumer_closes_total');
  const body = 'y'.repeat(9000);
  for (let round = 0; round < 20; round++) {
    await publishPosts('u-slow', 100, body);
    if ((await metric(nodes.a, 'gateway_slow_consumer_closes_total')) > before) break;
  }
  await waitUntil(
    'the slow-consumer close',
    30_000,
    async () => (await metric(nodes.a, 'gateway_slow_consumer_closes_total')) > before,
  );
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${nodes.a.process.pid}/status`, 'utf8'))?.[1]);
  assert.ok(rssKb < 400 * 1024, `node RSS ${rssKb} kB stays bounded`);
  (slow.socket as unknown as { _socket: { resume(): void } })._socket.resume();
  assert.equal(await slow.closed(40_000), 4009);
});

test('SSE should receive the same events and recover with Last-Event-ID', async () => {
  const token = await signAccessToken(secret, 'sse-user');
  const open = async (lastEventId?: string) => {
    const sse = await openSse(
      `${nodes.b.url}/sse?channels=creator:u-sse&access_token=${token}`,
      lastEventId ? { 'last-event-id': lastEventId } : {},
    );
    assert.equal(sse.status, 200);
    return { messages: sse.messages, close: sse.abort };
  };
  const events = (m: { messages: { event?: string; data: Record<string, unknown> }[] }) =>
    m.messages.filter((x) => x.event === 'event' && x.data.channel === 'creator:u-sse');

  const first = await open();
  await waitFor('the SSE ack', 10_000, () =>
    first.messages.find((m) => m.event === 'ack' && m.data.channel === 'creator:u-sse'),
  );
  const live = await publishPosts('u-sse', 3);
  await waitUntil('3 live SSE events', 20_000, () => events(first).length >= 3);
  assert.deepEqual(
    events(first)
      .map((m) => (m.data.event as { id: string }).id)
      .sort(),
    [...live].sort(),
  );
  const lastId = first.messages.filter((m) => m.id).at(-1)?.id;
  first.close();

  const missed = await publishPosts('u-sse', 5);
  await waitUntil(
    'the missed events in history',
    20_000,
    async () => (await redis.xlen(`${redisPrefix}history:{creator:u-sse}`)) >= 8,
  );
  const second = await open(lastId);
  await waitUntil('5 recovered SSE events', 20_000, () => events(second).length >= 5);
  const ack = second.messages.find((m) => m.event === 'ack' && m.data.channel === 'creator:u-sse');
  assert.equal(ack?.data.recovered, true);
  assert.deepEqual(
    events(second)
      .map((m) => (m.data.event as { id: string }).id)
      .sort(),
    [...missed].sort(),
  );
  second.close();

  const unauthorized = await callApi(nodes.b, 'GET', '/sse?channels=creator:u-sse');
  assert.deepEqual([unauthorized.status, unauthorized.json().code], [401, 'AUTH_TOKEN_MISSING']);
  const forbidden = await callApi(nodes.b, 'GET', `/sse?channels=user:someone-else&access_token=${token}`);
  assert.deepEqual([forbidden.status, forbidden.json().code], [403, 'GW_SUBSCRIBE_FORBIDDEN']);
});

test('after Redis loses everything, the live nodes should re-register what they hold within a few heartbeats', async () => {
  const client = await connect(nodes.a, 'amnesia-user');
  await subscribe(client, 'creator:u-amnesia');
  const nodeA = `a-${run}`;
  // What a Redis restart without persistence does to this deployment's keys.
  await deleteKeys(redis, `${redisPrefix}*`);
  await waitUntil('the registry refilled', HEARTBEAT_MS * 5 + 2000, async () => {
    const now = Date.now();
    const live = await redis.zrangebyscore(`${redisPrefix}{registry}:nodes`, now, '+inf');
    const holders = await redis.zrangebyscore(`${redisPrefix}channel-nodes:{creator:u-amnesia}`, now, '+inf');
    const presence = await redis.zrangebyscore(`${redisPrefix}presence:{user:amnesia-user}`, now, '+inf');
    return live.includes(nodeA) && holders.includes(nodeA) && presence.length === 1;
  });
  // Events keep flowing to the client, in a new history epoch.
  const ids = await publishPosts('u-amnesia', 3);
  await waitUntil('the events after the loss', 20_000, () => eventsOn(client, 'creator:u-amnesia').length >= 3);
  assert.deepEqual(
    eventsOn(client, 'creator:u-amnesia')
      .map((f) => f.event.id)
      .sort(),
    [...ids].sort(),
  );
});

test('SIGKILL of a node should clear its registry entries within the lease, and its clients recover on another node', async () => {
  const victim = await connect(nodes.b, 'crash-user');
  const ack = (await subscribe(victim, 'creator:u-crash')) as { offset: string; epoch: string };
  const nodeB = `b-${run}`;
  assert.ok((await redis.zrange(`${redisPrefix}channel-nodes:{creator:u-crash}`, 0, -1)).includes(nodeB));
  await nodes.b.stop('SIGKILL');
  await victim.closed();
  await waitUntil('node b gone from the registry', HEARTBEAT_MS * 3 + 2000, async () => {
    const live = await redis.zrangebyscore(`${redisPrefix}{registry}:nodes`, Date.now(), '+inf');
    const holders = await redis.zrangebyscore(`${redisPrefix}channel-nodes:{creator:u-crash}`, Date.now(), '+inf');
    return !live.includes(nodeB) && !holders.includes(nodeB);
  });
  const missed = await publishPosts('u-crash', 20);
  // Node b's partitions move to the survivors after the session timeout.
  await expectRecoveredOn(nodes.a, 'crash-user', 'creator:u-crash', ack, missed);
});

test('SIGTERM should tell clients to reconnect, and they move to another node without missing anything', async () => {
  const mover = await connect(nodes.c, 'drain-user');
  const ack = (await subscribe(mover, 'creator:u-drain')) as { offset: string; epoch: string };
  const exited = nodes.c.stop('SIGTERM');
  await mover.frame((f) => f.op === 'reconnect', 10_000);
  assert.equal(await mover.closed(), 1001);
  const during = await publishPosts('u-drain', 10);
  assert.equal(await exited, 0, 'a drained node exits cleanly');
  await expectRecoveredOn(nodes.a, 'drain-user', 'creator:u-drain', ack, during);
});
