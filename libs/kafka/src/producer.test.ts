import { test } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import type { Kafka, Producer, ProducerBatch } from 'kafkajs';
import { handleOf } from './client.js';
import { createEventProducer } from './producer.js';

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
