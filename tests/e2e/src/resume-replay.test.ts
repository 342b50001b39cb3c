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
  publishPostEvents,
  spawnService,
  subscribeClient as subscribe,
} from './harness.js';
import type { RunningService, TestClient } from './harness.js';

// A resume whose replay is several times a socket's send buffer, on a real gateway process,
// Kafka and Redis: a client that reads gets the whole replay, then the live events, instead of
// being closed 4009 part-way on every attempt.
const stack = isolatedRun('replay');
const secret = jwtSecret(stack.jwtSecretText);
const env = {
  ...stack.env,
  KAFKA_TOPIC_PARTITIONS: '1',
  KAFKA_GROUP_ID: `replay.${stack.run}`,
  WS_SEND_BUFFER_BYTES: String(64 * 1024),
};
let producer: EventProducer;
let gateway: RunningService;
const clients: TestClient[] = [];

before(async () => {
  gateway = await spawnService('fanout-gateway', { ...env, NODE_ID: `replay-${stack.run}` });
  const kafka = createKafka({
    brokers: testInfra.kafkaBrokers,
    clientId: 'replay-e2e',
    logger: createLogger('replay', 'silent'),
  });
  producer = createEventProducer(kafka);
  await producer.connect();
});

after(() =>
  cleanupAll(
    ...clients.map((c) => () => c.close()),
    () => gateway?.stop('SIGKILL'),
    () => producer?.disconnect(),
    () => stack.cleanup(),
  ),
);

test('a reading client resuming more than its send buffer behind should get every event once, in order, then the live ones, with no 4009', async () => {
  const channel = 'creator:u-replay';
  const topicPrefix = stack.env.KAFKA_TOPIC_PREFIX;
  const body = 'x'.repeat(2000);
  const online = await connectClient(gateway, secret, 'online', clients);
  const start = (await subscribe(online, channel)) as { offset: string; epoch: string };
  // 200 events of ~2.3 KB while the resuming client is away: a replay of ~460 KB, 7 send buffers.
  await publishPostEvents(producer, topicPrefix, 'u-replay', 200, body);
  await waitUntil('the events in history', 30_000, () => eventsOn(online, channel).length >= 200);

  const back = await connectClient(gateway, secret, 'back', clients);
  const ack = await subscribe(back, channel, start);
  assert.deepEqual([ack.recovered, ack.replayed], [true, 200]);
  await publishPostEvents(producer, topicPrefix, 'u-replay', 20, body);
  await waitUntil(
    'the replay and the live events',
    30_000,
    () => eventsOn(back, channel).length >= 220 || back.closeCode !== undefined,
  );
  assert.equal(back.closeCode, undefined, 'the resuming client stays connected');
  assert.deepEqual(
    eventsOn(back, channel).map((f) => Number(f.offset)),
    Array.from({ length: 220 }, (_, i) => Number(start.offset) + i + 1),
    'contiguous offsets, in order, once',
  );
});
