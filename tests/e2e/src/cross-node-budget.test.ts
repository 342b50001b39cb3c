import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { jwtSecret } from '@ripple/auth';
import { createEventProducer, createKafka } from '@ripple/kafka';
import type { EventProducer } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, testInfra, waitUntil } from '@ripple/testing';
import {
  connectClient,
  eventFramesOn as eventsOn,
  isolatedRun,
  metricSum,
  publishPostEvents,
  spawnService,
  subscribeClient as subscribe,
} from './harness.js';
import type { RunningService, TestClient } from './harness.js';

// Frames another node routed to this one go through the send budget's pacing as the node's own
// batches do. Node A consumes the run's topics; node B consumes topics of its own that nobody
// writes to, so every frame its clients get came over the node bus from A. B's sockets have a
// small send buffer: a large burst written to them in one pass (what B did before) closes readers
// that keep up with 4009; in slices, with the event loop turning between them, it does not.
const stack = isolatedRun('xbudget');
// Only B's Kafka side: its topics and consumer group, removed with this run's clean-up.
const idle = isolatedRun('xbudgetidle');
const secret = jwtSecret(stack.jwtSecretText);
const SEND_BUFFER_BYTES = 64 * 1024;
const common = {
  ...stack.env,
  WS_SEND_BUFFER_BYTES: String(SEND_BUFFER_BYTES),
  HISTORY_SIZE: '10000',
  HISTORY_RECOVERY_LIMIT: '10000',
};
let producer: EventProducer;
let nodeA: RunningService;
let nodeB: RunningService;
const clients: TestClient[] = [];

before(async () => {
  nodeA = await spawnService('fanout-gateway', {
    ...common,
    NODE_ID: `a-${stack.run}`,
    KAFKA_GROUP_ID: `xbudget.${stack.run}.a`,
  });
  nodeB = await spawnService('fanout-gateway', {
    ...common,
    NODE_ID: `b-${stack.run}`,
    KAFKA_TOPIC_PREFIX: idle.env.KAFKA_TOPIC_PREFIX,
    KAFKA_GROUP_ID: `xbudgetidle.${idle.run}.b`,
  });
  const kafka = createKafka({
    brokers: testInfra.kafkaBrokers,
    clientId: 'xbudget-e2e',
    logger: createLogger('xbudget', 'silent'),
  });
  producer = createEventProducer(kafka);
  await producer.connect();
});

after(() =>
  cleanupAll(
    ...clients.map((c) => () => c.close()),
    () => Promise.all([nodeA?.stop('SIGKILL'), nodeB?.stop('SIGKILL')]),
    () => producer?.disconnect(),
    () => stack.cleanup(),
    () => idle.cleanup(),
  ),
);

const connect = (at: RunningService, userId: string): Promise<TestClient> => connectClient(at, secret, userId, clients);

test('clients that read should get a large burst another node routed to theirs, once each and in order, and none be closed 4009', async () => {
  const channel = 'creator:u-xbudget';
  const readers = [
    await connect(nodeB, 'reader-1'),
    await connect(nodeB, 'reader-2'),
    await connect(nodeB, 'reader-3'),
  ];
  for (const r of readers) await subscribe(r, channel);
  // ~9 KB per event, published in batches of 100: each message from A to B holds up to ~100 of
  // them, many times one socket's send buffer (64 KiB).
  const published = await publishPostEvents(producer, stack.env.KAFKA_TOPIC_PREFIX, 'u-xbudget', 400, 'b'.repeat(9000));
  await waitUntil('every reader to get the burst or be closed', 60_000, () =>
    readers.every((r) => r.closeCode !== undefined || eventsOn(r, channel).length >= published.length),
  );
  assert.deepEqual(
    readers.map((r) => r.closeCode),
    [undefined, undefined, undefined],
    'no reader was closed',
  );
  assert.equal(await metricSum(nodeB, 'gateway_slow_consumer_closes_total'), 0);
  assert.ok((await metricSum(nodeA, 'gateway_node_messages_sent_total')) > 0, 'the burst crossed from A to B');
  for (const r of readers) {
    const events = eventsOn(r, channel);
    assert.deepEqual(
      events.map((e) => e.event.id),
      published,
      'every event once, in publish order',
    );
    assert.deepEqual(
      events.map((e) => Number(e.offset)),
      events.map((_, i) => i + 1),
      'offsets with no gap',
    );
  }
});
