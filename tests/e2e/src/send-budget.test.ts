import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { createEventProducer, createKafka } from '@ripple/kafka';
import type { EventProducer } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { testInfra, waitUntil } from '@ripple/testing';
import {
  TestClient,
  eventFramesOn as eventsOn,
  isolatedRun,
  metricSum,
  publishPostEvents,
  spawnService,
  subscribeClient as subscribe,
} from './harness.js';
import type { RunningService } from './harness.js';

// The gateway-wide send budget on a real gateway process, Kafka and Redis: clients that stop
// reading hold the Kafka consumer back until the budget's stall bound, then are closed 4009 and
// recover from history; the clients that read get every event, in order, meanwhile.
const stack = isolatedRun('budget');
const secret = jwtSecret(stack.jwtSecretText);
const STALL_MS = 1000;
const env = {
  ...stack.env,
  KAFKA_TOPIC_PARTITIONS: '2',
  KAFKA_GROUP_ID: `budget.${stack.run}`,
  // One socket may queue far more than the whole budget: only the budget closes sockets here.
  WS_SEND_BUFFER_BYTES: String(256 * 1024 * 1024),
  WS_SEND_BUDGET_BYTES: String(64 * 1024),
  WS_SEND_BUDGET_STALL_MS: String(STALL_MS),
  HISTORY_SIZE: '10000',
  HISTORY_RECOVERY_LIMIT: '10000',
  WS_RATE_PER_SEC: '10000',
  WS_RATE_BURST: '10000',
};
let producer: EventProducer;
let gateway: RunningService;
const clients: TestClient[] = [];

before(async () => {
  gateway = await spawnService('fanout-gateway', { ...env, NODE_ID: `budget-${stack.run}` });
  const kafka = createKafka({
    brokers: testInfra.kafkaBrokers,
    clientId: 'budget-e2e',
    logger: createLogger('budget', 'silent'),
  });
  producer = createEventProducer(kafka);
  await producer.connect();
});

after(async () => {
  for (const c of clients) c.close();
  await gateway.stop('SIGKILL');
  await producer.disconnect();
  await stack.cleanup();
});

async function connect(userId: string): Promise<TestClient> {
  const client = TestClient.connect(
    `ws://127.0.0.1:${gateway.port}/ws?access_token=${await signAccessToken(secret, userId)}`,
  );
  clients.push(client);
  await client.frame((f) => f.op === 'welcome');
  return client;
}

const metric = (name: string) => metricSum(gateway, name);
const topicPrefix = stack.env.KAFKA_TOPIC_PREFIX;

type Paused = { _socket: { pause(): void; resume(): void } };

test('clients that stop reading should be closed 4009 once the send budget stalls, and recover with nothing lost, while the others get every event in order', async () => {
  const channel = 'creator:u-budget';
  const readers = [await connect('reader-1'), await connect('reader-2'), await connect('reader-3')];
  const stalled = [await connect('stalled-1'), await connect('stalled-2')];
  for (const c of [...readers, ...stalled]) await subscribe(c, channel);
  // Stop reading: the kernel buffers fill, then the gateway's queues for these two sockets.
  for (const c of stalled) (c.socket as unknown as Paused)._socket.pause();

  const published: string[] = [];
  const body = 'b'.repeat(9000);
  for (let round = 0; round < 40 && (await metric('gateway_send_budget_closes_total')) < stalled.length; round++) {
    published.push(...(await publishPostEvents(producer, topicPrefix, 'u-budget', 100, body)));
    // The readers keep up: the budget holds the consumer back only while the stalled sockets hold bytes.
    await waitUntil('the readers to catch up', 60_000, () =>
      readers.every((r) => eventsOn(r, channel).length === published.length),
    );
  }
  assert.equal(
    await metric('gateway_send_budget_closes_total'),
    stalled.length,
    'both stalled sockets closed for the budget',
  );
  assert.ok((await metric('gateway_send_budget_wait_seconds_count')) > 0, 'routed batches waited for the budget');
  assert.ok((await metric('gateway_send_budget_wait_seconds_sum')) >= STALL_MS / 1000, 'a wait lasted the stall bound');
  published.push(...(await publishPostEvents(producer, topicPrefix, 'u-budget', 20, body)));
  await waitUntil('the readers to get the last events', 60_000, () =>
    readers.every((r) => eventsOn(r, channel).length === published.length),
  );

  // Every reader got every event once, in publish order (one author: one partition), offsets with no gap.
  for (const r of readers) {
    const events = eventsOn(r, channel);
    assert.deepEqual(
      events.map((e) => e.event.id),
      published,
    );
    assert.deepEqual(
      events.map((e) => Number(e.offset)),
      events.map((_, i) => Number(events[0]?.offset) + i),
    );
  }

  // The stalled clients read again: what was queued before the close, then 4009 ("slow consumer").
  for (const [i, c] of stalled.entries()) {
    (c.socket as unknown as Paused)._socket.resume();
    assert.equal(await c.closed(40_000), 4009);
    assert.equal(c.closeReason, 'slow consumer');
    const seen = eventsOn(c, channel);
    assert.ok(seen.length < published.length, 'the stalled client missed events before its close');
    // It reconnects with the last position it saw and recovers everything after it from history.
    const last = seen.at(-1);
    assert.ok(last, 'the stalled client saw events before it stopped reading');
    const again = await connect(`stalled-${i + 1}`);
    const ack = (await subscribe(again, channel, { offset: last.offset, epoch: last.epoch })) as { recovered: boolean };
    assert.equal(ack.recovered, true);
    await waitUntil(
      'the recovered events',
      30_000,
      () => seen.length + eventsOn(again, channel).length >= published.length,
    );
    assert.deepEqual(
      [...seen, ...eventsOn(again, channel)].map((e) => e.event.id),
      published,
    );
  }
});
