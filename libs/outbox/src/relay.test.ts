import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '@ripple/telemetry';
import { waitUntil } from '@ripple/testing';
import { MessageTooLargeError } from '@ripple/kafka';
import type { EventProducer, OutgoingMessage } from '@ripple/kafka';
import { createOutboxRelay } from './relay.js';
import type { OutboxRecord, OutboxStore } from './relay.js';

const logger = createLogger('outbox-test', 'silent');

function memoryOutbox(
  rows: OutboxRecord[],
): OutboxStore & { sent: Set<string>; refused: Map<string, string>; releases: number } {
  const sent = new Set<string>();
  const refused = new Map<string, string>();
  return {
    sent,
    refused,
    releases: 0,
    release() {
      this.releases++;
      return Promise.resolve();
    },
    async publishBatch(limit, publish) {
      const batch = rows.filter((r) => !sent.has(r.id)).slice(0, limit);
      if (batch.length === 0) return 0;
      await publish(batch, ({ ids, code }) => ids.forEach((id) => refused.set(id, code)));
      for (const r of batch) sent.add(r.id);
      return batch.length;
    },
  };
}

function flakyProducer(failures: number): EventProducer & { published: OutgoingMessage[] } {
  const published: OutgoingMessage[] = [];
  let left = failures;
  return {
    published,
    connect: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
    send(messages) {
      if (left > 0) {
        left -= 1;
        return Promise.reject(new Error('broker down'));
      }
      published.push(...messages);
      return Promise.resolve();
    },
  };
}

const row = (id: number): OutboxRecord => ({
  createdAt: new Date(),
  id: String(id),
  topic: 'post.events.v1',
  key: `k${id}`,
  value: '{}',
  headers: {},
});

test('outbox relay should keep rows unsent while Kafka fails and publish them in order once it is back', async () => {
  const store = memoryOutbox([1, 2, 3, 4, 5].map(row));
  const producer = flakyProducer(3);
  const relay = createOutboxRelay({
    store,
    producer,
    topicPrefix: 'x.',
    logger,
    batchSize: 2,
    pollIntervalMs: 10,
    maxBackoffMs: 20,
  });
  relay.start();
  await waitUntil('all rows sent', 10_000, () => store.sent.size === 5);
  await relay.stop();
  assert.deepEqual(
    producer.published.map((m) => m.key),
    ['k1', 'k2', 'k3', 'k4', 'k5'],
  );
  assert.ok(producer.published.every((m) => m.topic === 'x.post.events.v1'));
});

test('outbox relay should publish at once when woken instead of waiting for its poll', async () => {
  const rows: OutboxRecord[] = [];
  const store = memoryOutbox(rows);
  const producer = flakyProducer(0);
  const relay = createOutboxRelay({ store, producer, topicPrefix: '', logger, pollIntervalMs: 60_000 });
  relay.start();
  await new Promise((r) => setTimeout(r, 20));
  rows.push(row(1));
  relay.wake();
  await waitUntil('the woken publish', 10_000, () => producer.published.length === 1);
  await relay.stop();
});

test('outbox relay should release its store once it stops, so another relay can take over at once', async () => {
  const store = memoryOutbox([row(1)]);
  const relay = createOutboxRelay({
    store,
    producer: flakyProducer(0),
    topicPrefix: '',
    logger,
    pollIntervalMs: 60_000,
  });
  relay.start();
  await waitUntil('the row to be sent', 5000, () => store.sent.size === 1);
  assert.equal(store.releases, 0, 'a running relay keeps its claim');
  await relay.stop();
  assert.equal(store.releases, 1);
});

test('outbox relay should report each batch with its oldest row, its acknowledgement, failures and empty reads', async () => {
  const written = [3, 1, 2].map((seconds, i) => ({ ...row(i + 1), createdAt: new Date(seconds * 1000) }));
  const events: string[] = [];
  const relay = createOutboxRelay({
    store: memoryOutbox(written),
    producer: flakyProducer(1),
    topicPrefix: '',
    logger,
    batchSize: 2,
    pollIntervalMs: 60_000,
    maxBackoffMs: 10,
    progress: {
      sending: (oldest) => events.push(`sending ${oldest}`),
      acknowledged: () => events.push('acknowledged'),
      idle: () => events.push('idle'),
      failed: () => events.push('failed'),
    },
  });
  relay.start();
  await waitUntil('an empty read', 5000, () => events.includes('idle'));
  await relay.stop();
  assert.deepEqual(events, [
    'sending 1000',
    'failed',
    'sending 1000',
    'acknowledged',
    'sending 2000',
    'acknowledged',
    'idle',
  ]);
});

/** A producer whose broker takes no message with a value longer than `limit` (as `EventProducer.send` refuses it). */
function boundedProducer(limit: number): EventProducer & { published: OutgoingMessage[] } {
  const published: OutgoingMessage[] = [];
  return {
    published,
    connect: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
    send(messages) {
      const oversized = messages.flatMap((m, index) =>
        m.value.length > limit ? [{ index, bytes: m.value.length }] : [],
      );
      if (oversized.length > 0) return Promise.reject(new MessageTooLargeError(oversized, limit));
      published.push(...messages);
      return Promise.resolve();
    },
  };
}

/** A logger at `level` whose lines land in the returned array, parsed. */
function capturingLogger(level: 'warn' | 'error') {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger('outbox-test', level, destination) };
}

test('outbox relay should set aside a row the broker can never take, log and report it, and publish the rows behind it in order', async () => {
  const rows = [1, 2, 3, 4, 5].map((id) => ({ ...row(id), key: 'author', value: id === 2 ? 'x'.repeat(100) : '{}' }));
  const store = memoryOutbox(rows);
  const producer = boundedProducer(10);
  const { lines, logger: errors } = capturingLogger('error');
  const refused: string[] = [];
  const published: string[] = [];
  const relay = createOutboxRelay({
    store,
    producer,
    topicPrefix: '',
    logger: errors,
    batchSize: 3,
    pollIntervalMs: 60_000,
    onRefused: (rs) => refused.push(...rs.map((r) => r.id)),
    onPublished: (rs) => published.push(...rs.map((r) => r.id)),
  });
  relay.start();
  await waitUntil('every row handled', 5000, () => store.sent.size === 5);
  await relay.stop();
  assert.deepEqual(
    producer.published.map((m) => m.value),
    ['{}', '{}', '{}', '{}'],
  );
  assert.deepEqual(published, ['1', '3', '4', '5']);
  assert.deepEqual(refused, ['2']);
  assert.deepEqual([...store.refused], [['2', 'KAFKA_MESSAGE_TOO_LARGE']]);
  assert.deepEqual(
    lines.map((l) => [l.level, l.outboxId, l.bytes, l.limit]),
    [[50, '2', 100, 10]],
  );
});

test('outbox relay should log which rows it keeps failing on, at the first failure and after 10, 100… in a row', async () => {
  const store = memoryOutbox([3, 4].map(row));
  const { lines, logger: warnings } = capturingLogger('warn');
  const relay = createOutboxRelay({
    store,
    producer: flakyProducer(12),
    topicPrefix: '',
    logger: warnings,
    pollIntervalMs: 60_000,
    maxBackoffMs: 1,
  });
  relay.start();
  await waitUntil('both rows sent', 5000, () => store.sent.size === 2);
  await relay.stop();
  assert.deepEqual(
    lines.map((l) => [l.msg, l.batch, l.failures]),
    [
      [
        'outbox relay cannot publish; retrying with backoff until it can',
        { firstId: '3', lastId: '4', rows: 2 },
        undefined,
      ],
      [
        'outbox relay still cannot publish; retrying with backoff until it can',
        { firstId: '3', lastId: '4', rows: 2 },
        10,
      ],
    ],
  );
});

test('outbox relay should name no batch when the store fails before it read one', async () => {
  const store = memoryOutbox([row(1)]);
  let failures = 1;
  const failingRead: OutboxStore = {
    release: () => store.release(),
    publishBatch: (limit, publish) =>
      failures-- > 0 ? Promise.reject(new Error('database down')) : store.publishBatch(limit, publish),
  };
  const { lines, logger: warnings } = capturingLogger('warn');
  const relay = createOutboxRelay({
    store: failingRead,
    producer: flakyProducer(0),
    topicPrefix: '',
    logger: warnings,
    pollIntervalMs: 60_000,
    maxBackoffMs: 1,
  });
  relay.start();
  await waitUntil('the row sent', 5000, () => store.sent.size === 1);
  await relay.stop();
  assert.deepEqual(
    lines.map((l) => [l.msg, l.batch]),
    [['outbox relay cannot publish; retrying with backoff until it can', undefined]],
  );
});
