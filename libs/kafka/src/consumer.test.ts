import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { createEvent, toOutboxMessage } from '@ripple/events';
import { createLogger } from '@ripple/telemetry';
import { handleOf } from './client.js';
import { createEventConsumer } from './consumer.js';
import type { EventProducer } from './producer.js';

/** Offset commits the stand-in received, each settled by the test. */
interface Commit {
  readonly offsets: { topic: string; partitions: { partition: number; offset: string }[] }[];
  settle(): void;
}

/**
 * A kafkajs client stand-in with one consumer whose `run` only keeps the `eachBatch` handler: the
 * test plays kafkajs' fetch loop, which hands over a partition's next batch only once the previous
 * `eachBatch` call returned. Offset commits stay pending until the test settles them.
 */
function fakeKafka() {
  const commits: Commit[] = [];
  let eachBatch: ((payload: EachBatchPayload) => Promise<void>) | undefined;
  const resolved = new Map<number, string>();
  const consumer = {
    events: { GROUP_JOIN: 'join', CRASH: 'crash', REBALANCING: 'rebalancing' },
    on: () => undefined,
    connect: () => Promise.resolve(),
    subscribe: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
    run: (config: { eachBatch: (payload: EachBatchPayload) => Promise<void> }) => {
      eachBatch = config.eachBatch;
      return new Promise<void>(() => undefined);
    },
  } as unknown as Consumer;
  const kafka = { consumer: () => consumer } as unknown as Kafka;
  const payload = (topic: string, partition: number, messages: KafkaMessage[]): EachBatchPayload =>
    ({
      batch: { topic, partition, messages },
      resolveOffset: (offset: string) => resolved.set(partition, String(Number(offset) + 1)),
      uncommittedOffsets: () => ({
        topics: [{ topic, partitions: [...resolved].map(([p, offset]) => ({ partition: p, offset })) }],
      }),
      commitOffsetsIfNecessary: (offsets: { topics: Commit['offsets'] }) =>
        new Promise<void>((settle) => commits.push({ offsets: offsets.topics, settle })),
      heartbeat: () => Promise.resolve(),
      isRunning: () => true,
      isStale: () => false,
    }) as unknown as EachBatchPayload;
  return {
    client: handleOf(kafka, 'test'),
    commits,
    batch: (topic: string, partition: number, messages: KafkaMessage[]) => {
      if (!eachBatch) throw new Error('the consumer is not running');
      return eachBatch(payload(topic, partition, messages));
    },
  };
}

function message(offset: number): KafkaMessage {
  const event = createEvent('post.liked', {
    source: 'consumer-test',
    data: { postId: 'p1', postAuthorId: 'u1', userId: `u${offset}`, likeCount: offset, at: new Date().toISOString() },
  });
  return { offset: String(offset), value: Buffer.from(toOutboxMessage(event).value) } as unknown as KafkaMessage;
}

/** Resolves with `promise`'s outcome, or rejects when it did not settle within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

test('a batch consumer should hand over the next batch while an offset commit is in flight, one commit at a time', async () => {
  const kafka = fakeKafka();
  const handled: string[] = [];
  const consumer = createEventConsumer({
    kafka: kafka.client,
    groupId: 'g',
    topics: ['t'],
    logger: createLogger('consumer-test', 'silent'),
    dlqProducer: {} as EventProducer,
    startAt: 'earliest',
    // Every batch is past the interval: each one wants its offsets committed.
    commitIntervalMs: 0,
    onEvent: () => Promise.resolve(),
    onBatch: (items) => {
      handled.push(...items.map((i) => i.meta.offset));
      return Promise.resolve();
    },
  });
  await consumer.begin();

  // The coordinator does not answer the first commit: the fetch loop must not wait for it.
  await within(kafka.batch('t', 0, [message(0), message(1)]), 5000, 'the first batch returning');
  assert.equal(kafka.commits.length, 1);
  await within(kafka.batch('t', 0, [message(2)]), 5000, 'the second batch returning');
  assert.deepEqual(handled, ['0', '1', '2']);
  assert.equal(kafka.commits.length, 1, 'no second commit while the first is in flight');

  // Once the first is answered, the next carries every offset handled since.
  kafka.commits[0]?.settle();
  await within(
    (async () => {
      while (kafka.commits.length < 2) await new Promise((r) => setImmediate(r));
    })(),
    5000,
    'the next commit',
  );
  assert.deepEqual(kafka.commits[0]?.offsets[0]?.partitions, [{ partition: 0, offset: '2' }]);
  assert.deepEqual(kafka.commits[1]?.offsets[0]?.partitions, [{ partition: 0, offset: '3' }]);
  kafka.commits[1]?.settle();
  await consumer.stop();
});
