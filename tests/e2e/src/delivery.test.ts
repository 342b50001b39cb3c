import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { jwtSecret } from '@ripple/auth';
import { createEvent, toOutboxMessage } from '@ripple/events';
import { createEventProducer, createKafka } from '@ripple/kafka';
import type { EventProducer } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, deleteKeys, testInfra, waitUntil } from '@ripple/testing';
import { connectClient, isolatedRun, spawnService } from './harness.js';
import type { RunningService, TestClient } from './harness.js';
import { expectReleased, isRunning } from './registry-check.js';

// Delivery guarantees on two real gateway processes (one Kafka partition each): a channel's
// frames reach every socket in offset order with no silent gap, even when cross-node messages
// are slow; and a Redis that lost its data neither hides events from other nodes' clients nor
// leaves a client unaware that history was lost.
const stack = isolatedRun('dg');
const secret = jwtSecret(stack.jwtSecretText);
const env = {
  ...stack.env,
  KAFKA_TOPIC_PARTITIONS: '2',
  KAFKA_GROUP_ID: `dg.${stack.run}`,
  // The default heartbeat: after a Redis flush the registry stays empty for seconds.
  REGISTRY_HEARTBEAT_MS: '5000',
  // Every cross-node message is late: frames a node consumed itself overtake them.
  FAULT_NODE_BUS_DELAY_MS: '150',
  WS_RATE_PER_SEC: '1000',
  WS_RATE_BURST: '1000',
};
const redis = new Redis(testInfra.redisUrl);
const kafka = createKafka({
  brokers: testInfra.kafkaBrokers,
  clientId: 'dg-e2e',
  logger: createLogger('dg', 'silent'),
});
let producer: EventProducer;
const nodes: RunningService[] = [];
const clients: TestClient[] = [];

before(async () => {
  nodes.push(await spawnService('fanout-gateway', { ...env, NODE_ID: `a-${stack.run}` }));
  nodes.push(await spawnService('fanout-gateway', { ...env, NODE_ID: `b-${stack.run}` }));
  producer = createEventProducer(kafka);
  await producer.connect();
});

// Registry leak check: once a test's clients are gone, every node is back at its baseline.
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const [i, node] of nodes.entries()) {
    if (isRunning(node)) await expectReleased(redis, stack.env.REDIS_KEY_PREFIX, node, `${'ab'[i]}-${stack.run}`);
  }
});

after(() =>
  cleanupAll(
    ...clients.map((c) => () => c.close()),
    () => Promise.all(nodes.map((n) => n.stop('SIGKILL'))),
    () => producer?.disconnect(),
    () => stack.cleanup(),
    () => redis.disconnect(),
  ),
);

function node(i: number): RunningService {
  return nodes[i] ?? assert.fail(`no node ${i}`);
}

const connect = (at: RunningService, userId: string): Promise<TestClient> => connectClient(at, secret, userId, clients);

async function subscribe(client: TestClient, channel: string, since?: { offset: string; epoch: string }) {
  const id = randomBytes(4).toString('hex');
  client.send({ op: 'subscribe', id, channel, ...(since && { since }) });
  return (await client.frame((f) => f.op === 'ack' && f.id === id)) as {
    offset: string;
    epoch: string;
    recovered?: boolean;
  };
}

/** Publishes `count` post.created events by `authorId`, each on its own post (keyed by the author: one partition). */
async function publishPosts(authorId: string, count: number): Promise<string[]> {
  const events = Array.from({ length: count }, () =>
    createEvent('post.created', {
      source: 'dg-e2e',
      data: { postId: randomBytes(6).toString('hex'), authorId, body: 'x', createdAt: new Date().toISOString() },
    }),
  );
  await producer.send(
    events.map((e) => {
      const m = toOutboxMessage(e);
      return { ...m, topic: env.KAFKA_TOPIC_PREFIX + m.topic };
    }),
  );
  return events.map((e) => e.id);
}

type EventFrame = { op: 'event'; channel: string; offset: string; epoch: string; event: { id: string } };
function eventsOn(client: TestClient, channel: string): EventFrame[] {
  return client.frames.filter((f): f is EventFrame => f.op === 'event' && f.channel === channel);
}

test('frames of one channel should reach a socket in offset order, and a socket dropped after the first recovers all', async () => {
  const channel = 'creator:u-order';
  const steady = await connect(node(1), 'steady');
  const dropper = await connect(node(1), 'dropper');
  const start = await subscribe(steady, channel);
  await subscribe(dropper, channel);
  const ids = await publishPosts('u-order', 20);

  // Dropped right after its first frame: whatever it got first must be the first event.
  const first = (await dropper.frame((f) => f.op === 'event' && f.channel === channel)) as EventFrame;
  dropper.close();
  await dropper.closed();
  assert.equal(first.offset, String(Number(start.offset) + 1), 'the first frame is the first offset');
  await waitUntil('every event on the steady socket', 20_000, () => eventsOn(steady, channel).length >= 20);
  const got = eventsOn(steady, channel);
  assert.deepEqual(
    got.map((f) => f.offset),
    Array.from({ length: 20 }, (_, i) => String(Number(start.offset) + i + 1)),
    'contiguous offsets, in order',
  );
  assert.deepEqual(got.map((f) => f.event.id).sort(), [...ids].sort());

  const back = await connect(node(0), 'dropper');
  const seen = eventsOn(dropper, channel);
  const last = seen.at(-1) ?? first;
  const ack = await subscribe(back, channel, { offset: last.offset, epoch: last.epoch });
  assert.equal(ack.recovered, true);
  await waitUntil('the rest', 10_000, () => seen.length + eventsOn(back, channel).length >= 20);
  assert.deepEqual([...seen, ...eventsOn(back, channel)].map((f) => f.event.id).sort(), [...ids].sort());
});

test('after Redis loses its data, clients of every node should get every new event, after a gap frame', async () => {
  const channel = 'creator:u-flush';
  const onA = await connect(node(0), 'flush-a');
  const onB = await connect(node(1), 'flush-b');
  await subscribe(onA, channel);
  await subscribe(onB, channel);
  const before = await publishPosts('u-flush', 2);
  await waitUntil('the events before', 20_000, () => [onA, onB].every((c) => eventsOn(c, channel).length >= 2));

  // What a Redis restart without persistence does to this deployment's keys; no heartbeat has
  // refilled the registry when the next events are routed.
  await deleteKeys(redis, `${env.REDIS_KEY_PREFIX}*`);
  const afterLoss = await publishPosts('u-flush', 6);
  for (const client of [onA, onB]) {
    await waitUntil('the events after the loss', 20_000, () => eventsOn(client, channel).length >= 8);
    assert.deepEqual(
      eventsOn(client, channel)
        .map((f) => f.event.id)
        .sort(),
      [...before, ...afterLoss].sort(),
    );
    const gapAt = client.frames.findIndex((f) => f.op === 'gap' && f.channel === channel);
    const firstNew = client.frames.findIndex((f) => f.op === 'event' && afterLoss.includes((f as EventFrame).event.id));
    assert.ok(gapAt >= 0 && gapAt < firstNew, 'a gap frame comes before the events of the new history');
    const gap = client.frames[gapAt] as { recovered: boolean; offset: string; epoch: string };
    assert.equal(gap.recovered, false);
    assert.deepEqual(
      eventsOn(client, channel)
        .slice(2)
        .map((f) => [f.epoch, f.offset]),
      Array.from({ length: 6 }, (_, i) => [gap.epoch, String(i + 1)]),
    );
  }
});
