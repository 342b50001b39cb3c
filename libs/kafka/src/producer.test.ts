import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import kafkajs from 'kafkajs';
import type { Kafka, Producer, ProducerBatch } from 'kafkajs';
import { handleOf } from './client.js';
import { MessageTooLargeError, createEventProducer, recordSizeBound } from './producer.js';

const { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSProtocolError } = kafkajs;

/** A stand-in for one kafkajs producer (one producer id): `fail` decides each send's fate. */
interface FakeProducer {
  readonly sent: ProducerBatch[];
  connects: number;
  disconnects: number;
}

/** A kafkajs client stand-in whose producers fail as `fail(producer number, send number)` says. */
function fakeKafka(fail: (producer: number, send: number) => Error | undefined) {
  const producers: FakeProducer[] = [];
  const kafka = {
    producer: () => {
      const n = producers.length;
      const fake: FakeProducer = { sent: [], connects: 0, disconnects: 0 };
      producers.push(fake);
      let sends = 0;
      return {
        connect: () => {
          fake.connects++;
          return Promise.resolve();
        },
        disconnect: () => {
          fake.disconnects++;
          return Promise.resolve();
        },
        sendBatch: (batch: ProducerBatch) => {
          const err = fail(n, sends++);
          if (err) return Promise.reject(err);
          fake.sent.push(batch);
          return Promise.resolve([]);
        },
      } as unknown as Producer;
    },
  } as unknown as Kafka;
  return { client: handleOf(kafka, 'test'), producers };
}

/** What kafkajs rejects with once the broker refuses a batch's sequence numbers (its retrier wraps the cause). */
const outOfOrder = () => {
  // kafkajs builds protocol errors from its error table's entry (typed as a plain Error).
  const refused = new KafkaJSProtocolError({
    type: 'OUT_OF_ORDER_SEQUENCE_NUMBER',
    code: 45,
    retriable: false,
    message: 'The broker received an out of order sequence number',
  } as unknown as Error);
  return Object.assign(new KafkaJSNonRetriableError(refused), { cause: refused });
};

const message = { topic: 't', key: 'k', value: '{}', headers: {} };

test('a producer whose sequence numbers the broker refuses should be replaced and the batch sent again', async () => {
  // The first producer id is refused for ever (the broker holds batches it never acknowledged).
  const { client, producers } = fakeKafka((producer) => (producer === 0 ? outOfOrder() : undefined));
  const events = createEventProducer(client);
  await events.connect();
  await events.send([message]);
  await events.send([message]);
  assert.equal(producers.length, 2, 'a fresh producer (new producer id)');
  assert.deepEqual(
    producers.map((p) => [p.sent.length, p.connects, p.disconnects]),
    [
      [0, 1, 1],
      [2, 1, 0],
    ],
  );
});

test('a producer that cannot reach the broker should be kept, and the failure reported', async () => {
  const { client, producers } = fakeKafka((_producer, send) =>
    send === 0 ? new KafkaJSConnectionError('Connection error: connect ECONNREFUSED') : undefined,
  );
  const events = createEventProducer(client);
  await events.connect();
  await assert.rejects(events.send([message]), /ECONNREFUSED/);
  await events.send([message]);
  assert.equal(producers.length, 1, 'the same producer id: its sequence numbers are still the broker’s');
  assert.equal(producers[0]?.sent.length, 1);
});

test("recordSizeBound should never be below kafkajs' encoding of a record, and exceed it by little", () => {
  // kafkajs' own record encoder (v2 record batches), the bytes it puts on the wire per record.
  const encodeRecord = createRequire(import.meta.url)('kafkajs/src/protocol/recordBatch/record/v0/index.js') as (r: {
    offsetDelta: number;
    timestampDelta: number;
    key: Buffer;
    value: Buffer;
    headers: Record<string, string>;
  }) => { size(): number };
  const cases: { key: string; value: string; headers: Record<string, string> }[] = [
    { key: '', value: '', headers: {} },
    { key: 'author-1', value: '{}', headers: { ce_id: randomUUID(), ce_type: 'post.created' } },
    { key: 'ключ', value: '€'.repeat(10_000), headers: { traceparent: `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01` } },
    { key: 'k'.repeat(300), value: '\u{1F600}'.repeat(70_000), headers: { 'h\u00e9': 'v'.repeat(200), x: '' } },
  ];
  for (const m of cases) {
    const exact = encodeRecord({
      offsetDelta: 499,
      timestampDelta: 60_000,
      key: Buffer.from(m.key),
      value: Buffer.from(m.value),
      headers: m.headers,
    }).size();
    const bound = recordSizeBound(m);
    assert.ok(bound >= exact, `${bound} >= ${exact}`);
    assert.ok(bound - exact <= 30 + 8 * Object.keys(m.headers).length, `${bound} - ${exact} is small`);
  }
});

test('a producer should send messages over its request bound in several requests, in order, each after the last was acknowledged', async () => {
  const { client, producers } = fakeKafka(() => undefined);
  const events = createEventProducer(client, { maxRequestBytes: 1000 });
  await events.connect();
  const messages = Array.from({ length: 10 }, (_, i) => ({
    topic: i % 3 === 0 ? 'a' : 'b',
    key: 'k',
    value: `${i}:`.padEnd(300, 'x'),
    headers: {},
  }));
  await events.send(messages);
  const requests = producers[0]?.sent ?? [];
  assert.ok(requests.length >= 4, `${requests.length} requests`);
  const values = (topic: string, batches: readonly ProducerBatch[]) =>
    batches
      .flatMap((b) => b.topicMessages?.filter((tm) => tm.topic === topic).flatMap((tm) => tm.messages) ?? [])
      .map((m) => m.value);
  assert.deepEqual(
    values('a', requests),
    messages.filter((m) => m.topic === 'a').map((m) => m.value),
  );
  assert.deepEqual(
    values('b', requests),
    messages.filter((m) => m.topic === 'b').map((m) => m.value),
  );
  for (const request of requests) {
    const bytes = request.topicMessages
      ?.flatMap((tm) => tm.messages)
      .reduce(
        (sum, m) =>
          sum +
          recordSizeBound({ key: String(m.key), value: String(m.value), headers: m.headers as Record<string, string> }),
        0,
      );
    assert.ok(bytes !== undefined && bytes <= 1000, `${bytes} bytes in one request`);
  }
});

test('a producer should stop at the request that failed, keeping what the broker acknowledged before it', async () => {
  const { client, producers } = fakeKafka((_producer, send) =>
    send === 1 ? new KafkaJSConnectionError('Connection error: connect ECONNREFUSED') : undefined,
  );
  const events = createEventProducer(client, { maxRequestBytes: 1000 });
  await events.connect();
  const messages = Array.from({ length: 9 }, (_, i) => ({
    topic: 't',
    key: 'k',
    value: `${i}:`.padEnd(300, 'x'),
    headers: {},
  }));
  await assert.rejects(events.send(messages), /ECONNREFUSED/);
  assert.equal(producers[0]?.sent.length, 1, 'the first request only; none after the failed one');
});

test('a producer should refuse, sending nothing, messages of which one alone is over its request bound', async () => {
  const { client, producers } = fakeKafka(() => undefined);
  const events = createEventProducer(client, { maxRequestBytes: 1000 });
  await events.connect();
  const err = await events.send([message, { ...message, value: 'x'.repeat(2000) }, message]).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof MessageTooLargeError);
  assert.equal(err.code, 'KAFKA_MESSAGE_TOO_LARGE');
  assert.equal(err.retriable, false);
  assert.deepEqual(
    err.oversized.map((o) => o.index),
    [1],
  );
  assert.equal(err.limit, 1000);
  assert.equal(producers[0]?.sent.length, 0);
});
