import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createEvent, toOutboxMessage } from '@ripple/events';
import { createLogger } from '@ripple/telemetry';
import {
  createEventConsumer,
  createEventProducer,
  createKafka,
  deleteTopics,
  dlqTopicOf,
  ensureTopics,
} from './index.js';
import type { ConsumedMeta } from './index.js';

// kafkajs smoke test against the real broker: createTopics with explicit partitions, the
// idempotent producer, a consumer group, and the dead-letter path.
const logger = createLogger('kafka-test', 'warn');
const kafka = createKafka({
  brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
  clientId: 'kafka-smoke-test',
  logger,
});
const run = randomUUID().slice(0, 8);
const topic = `test.${run}.post.events.v1`;
const cleanups: (() => Promise<void>)[] = [];

after(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await deleteTopics(kafka, [topic, dlqTopicOf(topic)]);
});

async function waitFor<T>(what: string, deadlineMs: number, probe: () => T | undefined): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function postCreated(postId: string) {
  return createEvent('post.created', {
    source: 'kafka-test',
    data: { postId, authorId: 'u1', body: `body of ${postId}`, createdAt: new Date().toISOString() },
  });
}

test('kafkajs should create topics with explicit partitions, publish idempotently and consume in a group', async () => {
  await ensureTopics(kafka, [
    { topic, numPartitions: 3, replicationFactor: 1 },
    { topic: dlqTopicOf(topic), numPartitions: 1, replicationFactor: 1 },
  ]);
  const admin = kafka.admin();
  await admin.connect();
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
  await admin.disconnect();
  assert.equal(metadata.topics[0]?.partitions.length, 3);

  const producer = createEventProducer(kafka);
  await producer.connect();
  cleanups.push(() => producer.disconnect());

  const received: { id: string; meta: ConsumedMeta }[] = [];
  const consumer = createEventConsumer({
    kafka,
    groupId: `test.${run}.group`,
    topics: [topic],
    logger,
    dlqProducer: producer,
    fromBeginning: true,
    onEvent: (event, meta) => {
      received.push({ id: event.id, meta });
      return Promise.resolve();
    },
  });
  await consumer.start();
  cleanups.push(() => consumer.stop());

  const events = ['p1', 'p2', 'p1', 'p3', 'p1'].map(postCreated);
  await producer.send(events.map((e) => ({ ...toOutboxMessage(e), topic })));
  // A poison message between valid ones: dead-lettered, and later messages still arrive.
  await producer.send([{ topic, key: 'p1', value: '{not json', headers: {} }]);
  const late = postCreated('p1');
  await producer.send([{ ...toOutboxMessage(late), topic }]);

  await waitFor('all valid events', 30_000, () => (received.length >= events.length + 1 ? true : undefined));
  assert.deepEqual(received.map((r) => r.id).sort(), [...events, late].map((e) => e.id).sort());
  // One aggregate, one partition, in publish order.
  const p1 = received.filter((r) => r.meta.partition === received.find((x) => x.id === events[0]?.id)?.meta.partition);
  const p1Ids = [events[0], events[2], events[4], late].map((e) => e?.id);
  assert.deepEqual(
    p1.map((r) => r.id).filter((id) => p1Ids.includes(id)),
    p1Ids,
  );
  assert.equal(received[0]?.meta.headers?.ce_type?.toString(), 'post.created');
});

test('a malformed message should land in the DLQ with its reason', async () => {
  const dead: { value: string; code: string | undefined }[] = [];
  const dlqConsumer = kafka.consumer({ groupId: `test.${run}.dlq-reader` });
  await dlqConsumer.connect();
  cleanups.push(() => dlqConsumer.disconnect());
  await dlqConsumer.subscribe({ topics: [dlqTopicOf(topic)], fromBeginning: true });
  await dlqConsumer.run({
    eachMessage: ({ message }) => {
      dead.push({ value: message.value?.toString() ?? '', code: message.headers?.dlq_error_code?.toString() });
      return Promise.resolve();
    },
  });
  const letter = await waitFor('the dead letter', 30_000, () => dead[0]);
  assert.equal(letter.value, '{not json');
  assert.equal(letter.code, 'EVENT_INVALID');
});
