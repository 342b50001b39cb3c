import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { applyMigrations, dropDatabase, ensureDatabase } from '@ripple/db';
import { createEvent, toOutboxMessage } from '@ripple/events';
import type { AnyEvent, OutboxMessage } from '@ripple/events';
import { createEventProducer, createKafka, deleteGroups, deleteTopics, ensureTopics, readTopics } from '@ripple/kafka';
import type { EventProducer, KafkaClient } from '@ripple/kafka';
import { Registry, createLogger } from '@ripple/telemetry';
import {
  cleanupAll,
  createTestRoles,
  privateKafka,
  runId,
  testDatabaseUrl,
  testInfra,
  waitUntil,
} from '@ripple/testing';
import { OUTBOX_CHANNEL, PgOutboxStore, createOutboxRelay, listenForOutbox, startOutboxService } from './index.js';
import type { OutboxRelay, VacuumResult } from './index.js';
import { BACKLOG_SQL, STEP_SQL } from './pg-store.js';

// The outbox against real PostgreSQL and Kafka: per-aggregate order with two relays at once, no
// lost or duplicated event when the broker process dies while the service keeps writing, and
// the lease: no transaction open while a relay waits for Kafka, its shards freed when it waits
// longer than the lease (the lock session's idle_session_timeout).
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const logger = createLogger('outbox-test', 'silent');
const run = runId();

/**
 * A database of the test's own with the outbox table. Cleanups run in reverse order of
 * registration when the test ends, so relays stop before their database goes.
 */
async function outboxDatabase(t: TestContext, name: string) {
  const cleanups: (() => Promise<unknown>)[] = [];
  t.after(() => cleanupAll(...cleanups.reverse()));
  const databaseUrl = testDatabaseUrl(`ripple_test_${run}_${name}`);
  await ensureDatabase(databaseUrl);
  cleanups.push(() => dropDatabase(databaseUrl));
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 8 });
  pool.on('error', () => undefined); // a relay's session ended by its lease is expected here
  cleanups.push(() => pool.end());
  await pool.query(readFileSync(join(ROOT, 'libs/outbox/sql/outbox.sql'), 'utf8'));
  return { databaseUrl, pool, defer: (cleanup: () => Promise<unknown>) => cleanups.push(cleanup) };
}

/** Every outbox row in id order, sent (`outbox_sent`) or not (`outbox`, sent_at NULL), as a FROM item. */
const EVERY_ROW = `(SELECT id, key, value, sent_at, refused FROM outbox_sent
  UNION ALL SELECT id, key, value, NULL, NULL FROM outbox) every_row`;

/** A like on `postId`, whose author is also called `postId`: the partition key (the author) is `postId`. */
function liked(postId: string, seq: number) {
  return createEvent('post.liked', {
    source: 'outbox-test',
    data: { postId, postAuthorId: postId, userId: `u${seq}`, likeCount: seq, at: new Date().toISOString() },
  });
}

/** Writes events the way a service does: each transaction appends rows to the outbox. */
/** Writes `events` (or rows made some other way: outbox messages) to the outbox in one transaction. */
async function writeOutbox(pool: pg.Pool, topic: string, events: readonly (AnyEvent | OutboxMessage)[]): Promise<void> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    for (const e of events) {
      const m = 'eventId' in e ? e : toOutboxMessage(e);
      await client.query(
        'INSERT INTO outbox (event_id, topic, key, shard, value, headers) VALUES ($1, $2, $3, $4, $5, $6)',
        [m.eventId, topic, m.key, m.shard, m.value, m.headers],
      );
    }
    await client.query('COMMIT');
  } finally {
    client.release();
  }
}

/** Everything on `topic`, from the beginning, as {id, key, seq, value}: `seq` is a like's `likeCount`. */
async function collect(kafka: KafkaClient, topic: string, defer: (cleanup: () => Promise<unknown>) => void) {
  const seen: { id: string; key: string; seq: number; value: string }[] = [];
  const groupId = `test.${run}.${topic}.reader`;
  // Cleanups run last first: the reader stops, then its group goes.
  defer(() => deleteGroups(kafka, (group) => group === groupId));
  const reader = await readTopics(kafka, {
    groupId,
    topics: [topic],
    fromBeginning: true,
    onMessage: (message) => {
      const value = message.value?.toString() ?? '{}';
      const event = JSON.parse(value) as { id: string; data: { likeCount: number } };
      seen.push({ id: event.id, key: message.key?.toString() ?? '', seq: event.data.likeCount, value });
    },
  });
  defer(() => reader.stop());
  return seen;
}

function assertExactlyOnceInOrder(seen: { id: string; key: string; seq: number }[], perKey: Map<string, number>): void {
  assert.equal(new Set(seen.map((s) => s.id)).size, seen.length, 'no event arrives twice');
  const total = [...perKey.values()].reduce((a, b) => a + b, 0);
  assert.equal(seen.length, total, 'every event arrives');
  for (const [key, count] of perKey) {
    const seqs = seen.filter((s) => s.key === key).map((s) => s.seq);
    assert.deepEqual(
      seqs,
      Array.from({ length: count }, (_, i) => i + 1),
      `order of ${key}`,
    );
  }
}

/**
 * At least once, in order: after dropping repeats by event id (as every consumer does), every
 * event of `perKey` arrived, each key's in sequence; at most `maxRepeats` repeats.
 */
function assertAtLeastOnceInOrder(
  seen: { id: string; key: string; seq: number }[],
  perKey: Map<string, number>,
  maxRepeats: number,
): void {
  const ids = new Set<string>();
  const first = seen.filter((s) => !ids.has(s.id) && ids.add(s.id));
  assert.ok(seen.length - first.length <= maxRepeats, `${seen.length - first.length} repeats, at most ${maxRepeats}`);
  assertExactlyOnceInOrder(first, perKey);
}

function relay(store: PgOutboxStore, producer: EventProducer, onCount: (n: number) => void): OutboxRelay {
  const r = createOutboxRelay({
    store,
    producer,
    topicPrefix: '',
    logger,
    batchSize: 25,
    pollIntervalMs: 50,
    maxBackoffMs: 500,
    onPublished: (rows) => onCount(rows.length),
  });
  r.start();
  return r;
}

test('two relays running at once should publish every event once, in per-aggregate order', async (t) => {
  const { pool, defer } = await outboxDatabase(t, 'two_relays');
  const kafka = createKafka({ brokers: testInfra.kafkaBrokers, clientId: 'outbox-test', logger });
  const topic = `test.${run}.two-relays`;
  await ensureTopics(kafka, [{ topic, numPartitions: 4, replicationFactor: 1 }]);
  defer(() => deleteTopics(kafka, [topic]));
  const producers = [createEventProducer(kafka), createEventProducer(kafka)];
  for (const p of producers) {
    await p.connect();
    defer(() => p.disconnect());
  }
  const counts = [0, 0];
  const relays = producers.map((p, i) =>
    relay(new PgOutboxStore(pool, { leaseMs: 30_000 }), p, (n) => (counts[i] = (counts[i] ?? 0) + n)),
  );
  defer(() => Promise.all(relays.map((r) => r.stop())));
  const seen = await collect(kafka, topic, defer);

  // 30 aggregates x 20 events, written by concurrent transactions while both relays run.
  const perKey = new Map<string, number>();
  const writers = Array.from({ length: 6 }, async (_, w) => {
    for (let seq = 1; seq <= 20; seq++) {
      const batch = Array.from({ length: 5 }, (_, k) => liked(`post-${w * 5 + k}`, seq));
      await writeOutbox(pool, topic, batch);
    }
  });
  await Promise.all(writers);
  for (let k = 0; k < 30; k++) perKey.set(`post-${k}`, 20);

  await waitUntil('600 events on the topic', 60_000, () => seen.length >= 600);
  await new Promise((r) => setTimeout(r, 300)); // would a duplicate follow?
  assertExactlyOnceInOrder(seen, perKey);
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox');
  assert.equal(rows[0]?.n, '0');
  logger.info({ counts }, 'rows published per relay');
});

/**
 * For the size tests: a database of its own, a topic (`spec`: partitions, max.message.bytes), a
 * producer, what reaches the topic (`seen`), and `startRelay(batchSize)`: a relay on that
 * database, stopped when the test ends.
 */
async function sizeTestbed(t: TestContext, name: string, spec: { numPartitions: number; maxMessageBytes?: number }) {
  const { pool, defer } = await outboxDatabase(t, name.replaceAll('-', '_'));
  const kafka = createKafka({ brokers: testInfra.kafkaBrokers, clientId: 'outbox-test', logger });
  const topic = `test.${run}.${name}`;
  await ensureTopics(kafka, [{ topic, replicationFactor: 1, ...spec }]);
  defer(() => deleteTopics(kafka, [topic]));
  const producer = createEventProducer(kafka);
  await producer.connect();
  defer(() => producer.disconnect());
  const seen = await collect(kafka, topic, defer);
  const startRelay = (batchSize: number) => {
    const relay = createOutboxRelay({
      store: new PgOutboxStore(pool, { leaseMs: 30_000 }),
      producer,
      topicPrefix: '',
      logger,
      batchSize,
      pollIntervalMs: 50,
      maxBackoffMs: 200,
    });
    relay.start();
    defer(() => relay.stop());
  };
  return { pool, topic, seen, startRelay };
}

test('a relay should publish batches larger than the broker takes in one request, every row as the outbox holds it, in order', async (t) => {
  // A post's body may be 10,000 UTF-16 code units (services/*/src/schemas.ts): ~30 KB of UTF-8
  // when every one is a 3-byte character. One author's posts share a key, so a partition: 500
  // such rows are one ~15 MB record batch, over the broker's max.message.bytes (1 MB by default),
  // and the relay sent them in one request it retried for ever, holding every later row too.
  const { pool, topic, seen, startRelay } = await sizeTestbed(t, 'large-batch', { numPartitions: 2 });

  const authors = ['author-a', 'author-b'];
  const events = Array.from({ length: 120 }, (_, seq) =>
    createEvent('post.created', {
      source: 'outbox-test',
      data: {
        postId: `post-${seq}`,
        authorId: authors[seq % 2] ?? 'author-a',
        body: `${seq}:`.padEnd(10_000, '€'),
        createdAt: new Date().toISOString(),
      },
    }),
  );
  await writeOutbox(pool, topic, events);
  startRelay(500);

  await waitUntil('120 events on the topic', 30_000, () => seen.length >= 120);
  const { rows } = await pool.query<{ key: string; value: string; unsent: boolean }>(
    `SELECT key, value, sent_at IS NULL AS unsent FROM ${EVERY_ROW} ORDER BY id`,
  );
  assert.deepEqual(
    rows.filter((r) => r.unsent),
    [],
    'every row marked sent',
  );
  for (const author of authors) {
    assert.deepEqual(
      seen.filter((s) => s.key === author).map((s) => s.value),
      rows.filter((r) => r.key === author).map((r) => r.value),
      `${author}'s events, once each, in order, as the outbox holds them`,
    );
  }
});

test('a relay should set aside a row too large for Kafka, marked refused, and publish the rows of its key behind it in order', async (t) => {
  // Over 1 MB of event (10,000 member ids of 128 characters): no produce request can hold it. The
  // catalog refuses it (101 members at most), so no service writes one; a row written by other
  // means (an older catalog, a hand-made row) must still not stop the shards behind it for ever.
  const { pool, topic, seen, startRelay } = await sizeTestbed(t, 'too-large-row', { numPartitions: 1 });

  const message = (seq: number) =>
    createEvent('chat.message.sent', {
      source: 'outbox-test',
      data: { roomId: 'room', messageId: `m${seq}`, senderId: 'u1', body: `${seq}`, sentAt: new Date().toISOString() },
    });
  const room = createEvent('chat.room.created', {
    source: 'outbox-test',
    data: { roomId: 'room', name: 'crowded', createdBy: 'u1', memberIds: ['u1'], createdAt: new Date().toISOString() },
  });
  const memberIds = Array.from({ length: 10_000 }, (_, i) => `${i}`.padStart(128, 'u'));
  const crowded = { ...toOutboxMessage(room), value: JSON.stringify({ ...room, data: { ...room.data, memberIds } }) };
  await writeOutbox(pool, topic, [message(1), crowded, message(3)]);
  await writeOutbox(pool, topic, [message(4)]);
  startRelay(2);

  await waitUntil('3 events on the topic', 30_000, () => seen.length >= 3);
  const { rows } = await pool.query<{ value: string; sent: boolean; refused: string | null }>(
    `SELECT value, sent_at IS NOT NULL AS sent, refused FROM ${EVERY_ROW} ORDER BY id`,
  );
  assert.deepEqual(
    rows.map((r) => [r.sent, r.refused]),
    [
      [true, null],
      [true, 'KAFKA_MESSAGE_TOO_LARGE'],
      [true, null],
      [true, null],
    ],
  );
  await new Promise((r) => setTimeout(r, 300)); // would anything else follow?
  assert.deepEqual(
    seen.map((s) => s.value),
    [rows[0], rows[2], rows[3]].map((r) => r?.value),
  );
});

test("a relay should publish around the rows a topic's own size limit refuses, once each and in order, and set those aside", async (t) => {
  // A topic whose max.message.bytes (20,000) is far below the producer's request bound: the broker
  // refuses any batch of more than three of these ~6 KB likes with MESSAGE_TOO_LARGE, and one
  // 30 KB like alone. The relay stopped for good on the first batch (it retried it for ever).
  const { pool, topic, seen, startRelay } = await sizeTestbed(t, 'topic-limit', {
    numPartitions: 1,
    maxMessageBytes: 20_000,
  });

  // Posts of one author: 6,000 ASCII characters each, and one of 10,000 three-byte ones (30 KB).
  const posted = (seq: number, body: string) =>
    createEvent('post.created', {
      source: 'outbox-test',
      data: { postId: `p${seq}`, authorId: 'a', body, createdAt: new Date().toISOString() },
    });
  const events = Array.from({ length: 12 }, (_, i) => posted(i, i === 4 ? '€'.repeat(10_000) : 'x'.repeat(6_000)));
  await writeOutbox(pool, topic, events);
  startRelay(25);

  await waitUntil('11 events on the topic', 30_000, () => seen.length >= 11);
  await new Promise((r) => setTimeout(r, 300)); // would anything else follow?
  assert.deepEqual(
    seen.map((s) => s.id),
    events.filter((_, i) => i !== 4).map((e) => e.id),
    'every row but the one over the limit, once each, in order',
  );
  const { rows } = await pool.query<{ sent: boolean; refused: string | null }>(
    `SELECT sent_at IS NOT NULL AS sent, refused FROM ${EVERY_ROW} ORDER BY id`,
  );
  assert.deepEqual(
    rows.map((r) => [r.sent, r.refused]),
    events.map((_, i) => [true, i === 4 ? 'KAFKA_MESSAGE_TOO_LARGE' : null]),
  );
});

test("two relays whose database sessions are killed mid-batch should lose no event and keep each key's order", async (t) => {
  const { pool, defer } = await outboxDatabase(t, 'killed_sessions');
  const kafka = createKafka({ brokers: testInfra.kafkaBrokers, clientId: 'outbox-test', logger });
  const topic = `test.${run}.killed-sessions`;
  await ensureTopics(kafka, [{ topic, numPartitions: 4, replicationFactor: 1 }]);
  defer(() => deleteTopics(kafka, [topic]));
  // Ends the relays' lock sessions (those that ran the relay's statements; this test's own database
  // only), as a failover or an operator does.
  const killSessions = async () => {
    const { rows } = await pool.query<{ n: number }>(
      `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
       WHERE datname = current_database() AND pid <> pg_backend_pid()
         AND (query LIKE 'WITH moved%' OR query LIKE 'SELECT pg_advisory_unlock_all%')`,
    );
    return rows[0]?.n ?? 0;
  };
  let kills = 0;
  let sends = 0;
  const producers = [createEventProducer(kafka), createEventProducer(kafka)];
  for (const p of producers) {
    await p.connect();
    defer(() => p.disconnect());
  }
  // Every third batch: the sessions die after the batch was read, before it is marked sent.
  const killing = (p: EventProducer): EventProducer => ({
    ...p,
    send: async (messages) => {
      if (++sends % 3 === 0) kills += await killSessions();
      await p.send(messages);
    },
  });
  const relays = producers.map((p) => relay(new PgOutboxStore(pool, { leaseMs: 30_000 }), killing(p), () => undefined));
  defer(() => Promise.all(relays.map((r) => r.stop())));
  const seen = await collect(kafka, topic, defer);

  // 20 aggregates x 20 events, while both relays run and a killer ends their sessions meanwhile too.
  const perKey = new Map<string, number>();
  let writing = true;
  const killer = (async () => {
    while (writing) {
      kills += await killSessions();
      await new Promise((r) => setTimeout(r, 15));
    }
  })();
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let seq = 1; seq <= 20; seq++) {
      await writeOutbox(
        pool,
        topic,
        Array.from({ length: 5 }, (_, k) => liked(`post-${w * 5 + k}`, seq)),
      );
    }
  });
  await Promise.all(writers);
  writing = false;
  await killer;
  for (let k = 0; k < 20; k++) perKey.set(`post-${k}`, 20);

  await waitUntil('400 events on the topic', 60_000, () => new Set(seen.map((s) => s.id)).size >= 400);
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(kills > 0, 'sessions were killed');
  // A batch whose session died before its mark is published again: at least once, in order.
  assertAtLeastOnceInOrder(seen, perKey, 400);
  const { rows } = await pool.query<{ n: string }>('SELECT count(*) AS n FROM outbox');
  assert.equal(rows[0]?.n, '0');
});

test('killing the Kafka broker while the service writes should lose nothing and keep each key in order', async (t) => {
  const { pool, databaseUrl, defer } = await outboxDatabase(t, 'chaos');
  // A broker of this test's own (free ports, own data), so killing it disturbs nobody.
  const broker = await privateKafka();
  defer(() => Promise.resolve(broker.remove()));
  const killBroker = () => broker.kill();
  await broker.start();

  const kafka = createKafka({ brokers: [broker.brokers], clientId: 'outbox-chaos', logger });
  const topic = `test.${run}.chaos`;
  await ensureTopics(kafka, [{ topic, numPartitions: 3, replicationFactor: 1 }]);
  const producer = createEventProducer(kafka);
  await producer.connect();
  defer(() => producer.disconnect());
  let published = 0;
  const r = relay(new PgOutboxStore(pool, { leaseMs: 60_000 }), producer, (n) => (published += n));
  const listener = listenForOutbox(databaseUrl, logger, () => r.wake());
  defer(() => listener.stop());
  defer(() => r.stop());

  // 1,000 events across 50 aggregates, 20 per transaction, written at a steady pace.
  const perKey = new Map<string, number>();
  let written = 0;
  const writer = (async () => {
    for (let seq = 1; seq <= 20; seq++) {
      for (let part = 0; part < 50; part += 20) {
        const keys = Array.from({ length: Math.min(20, 50 - part) }, (_, k) => `agg-${part + k}`);
        await writeOutbox(
          pool,
          topic,
          keys.map((key) => liked(key, seq)),
        );
        written += keys.length;
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  })();
  for (let k = 0; k < 50; k++) perKey.set(`agg-${k}`, 20);

  await waitUntil('some events published', 30_000, () => published >= 150);
  killBroker();
  const publishedAtKill = published;
  await waitUntil('the service to write while Kafka is down', 30_000, () => written >= publishedAtKill + 200);
  await broker.start();
  await writer;
  assert.equal(written, 1000);

  const seen = await collect(kafka, topic, defer);
  await waitUntil('1,000 events on the topic', 120_000, () => new Set(seen.map((s) => s.id)).size >= 1000);
  await new Promise((res) => setTimeout(res, 500));
  // A produce request cut by the kill may have been written and is sent again (by a fresh
  // producer when the restarted broker refuses the old one's sequence numbers): at least once,
  // consumers drop repeats by event id. A request holds at most 25 events (batchSize).
  assertAtLeastOnceInOrder(seen, perKey, 50);
});

test('a relay should hold no transaction while it waits for Kafka, and lose its shards once its lease runs out', async (t) => {
  const { pool, defer } = await outboxDatabase(t, 'lease');
  await writeOutbox(pool, `test.${run}.lease`, [liked('post-1', 1), liked('post-1', 2)]);
  const first = new PgOutboxStore(pool, { leaseMs: 500 });
  const second = new PgOutboxStore(pool, { leaseMs: 500 });
  defer(() => first.close());
  defer(() => second.close());

  // The first relay's Kafka does not answer until we say so.
  let entered = false;
  let answer = (): void => undefined;
  const kafkaAnswers = new Promise<void>((resolve) => (answer = resolve));
  const firstBatch = first.publishBatch(10, async () => {
    entered = true;
    await kafkaAnswers;
  });
  await waitUntil('the first relay to publish', 10_000, () => entered);
  const open = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
     WHERE datname = current_database() AND state LIKE 'idle in transaction%'`,
  );
  assert.equal(open.rows[0]?.n, 0, 'no transaction is open while the relay waits for Kafka');
  const nothing = await second.publishBatch(10, () => Promise.reject(new Error('the shard is taken')));
  assert.equal(nothing, 0, 'another relay skips the shard while the lease holds');

  const ids: string[] = [];
  await waitUntil('the lease to run out and the second relay to publish', 10_000, async () => {
    const n = await second.publishBatch(10, (rows) => {
      ids.push(...rows.map((r) => r.id));
      return Promise.resolve();
    });
    return n > 0;
  });
  answer();
  await assert.rejects(firstBatch, 'a relay whose lease ran out cannot mark its rows sent');
  assert.equal(ids.length, 2);
  assert.ok(Number(ids[0]) < Number(ids[1]), 'in id order');
  const unsent = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
  assert.equal(unsent.rows[0]?.n, 0);
});

test('a relay should keep its shards while it finds rows, and release them when it finds none, fails or stops', async (t) => {
  const { pool, defer } = await outboxDatabase(t, 'keep');
  const topic = `test.${run}.keep`;
  await writeOutbox(pool, topic, [liked('post-1', 1), liked('post-1', 2), liked('post-2', 1), liked('post-2', 2)]);
  const first = new PgOutboxStore(pool, { leaseMs: 30_000 });
  const second = new PgOutboxStore(pool, { leaseMs: 30_000 });
  defer(() => first.close());
  defer(() => second.close());
  const sent: string[] = [];
  const into = (rows: readonly { id: string }[]) => {
    sent.push(...rows.map((r) => r.id));
    return Promise.resolve();
  };
  const refuse = () => Promise.reject(new Error('the shards are held by the other relay'));

  assert.equal(await first.publishBatch(1, into), 1);
  assert.equal(await second.publishBatch(10, refuse), 0, 'a relay that found rows keeps its shards');
  assert.equal(await first.publishBatch(1, into), 1);
  await first.release(); // as its relay does when it stops
  assert.equal(await second.publishBatch(1, into), 1, 'a stopped relay frees its shards at once');
  assert.equal(await first.publishBatch(10, refuse), 0, 'the other relay keeps them now');
  assert.equal(await second.publishBatch(10, into), 1);
  assert.equal(await second.publishBatch(10, into), 0, 'nothing left: the relay releases its shards');
  await writeOutbox(pool, topic, [liked('post-1', 3)]);
  assert.equal(await first.publishBatch(10, into), 1, 'another relay takes the released shards');
  assert.deepEqual(
    sent.map(Number),
    [...sent.map(Number)].sort((a, b) => a - b),
    'in id order',
  );

  await writeOutbox(pool, topic, [liked('post-1', 4)]);
  await assert.rejects(
    first.publishBatch(10, () => Promise.reject(new Error('Kafka is down'))),
    /Kafka is down/,
  );
  assert.equal(await second.publishBatch(10, into), 1, 'a relay that failed releases its shards');
  const unsent = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
  assert.equal(unsent.rows[0]?.n, 0);
});

/**
 * The statements the relays' lock sessions (the pg clients with an `idle_session_timeout`) send
 * from now until the test ends, each with the client that sent it: each is a round trip to
 * PostgreSQL. A spy: every call still runs the real `query`.
 */
function lockSessionStatements(t: TestContext): () => pg.Client[] {
  const spy = t.mock.method(pg.Client.prototype, 'query');
  const isLockSession = (client: unknown) =>
    (client as { connectionParameters: { options?: string } }).connectionParameters.options?.includes(
      'idle_session_timeout',
    ) === true;
  return () => spy.mock.calls.map((call) => call.this as pg.Client).filter(isLockSession);
}

test('a relay should mark a batch and read the next one in one statement, and read and release in one', async (t) => {
  const { pool, defer } = await outboxDatabase(t, 'statements');
  const topic = `test.${run}.statements`;
  await writeOutbox(
    pool,
    topic,
    [1, 2, 3, 4, 5].map((seq) => liked('post-1', seq)),
  );
  const store = new PgOutboxStore(pool, { leaseMs: 30_000 });
  defer(() => store.close());
  const sessionStatements = lockSessionStatements(t);
  const statements = () => sessionStatements().length;
  const sent: string[] = [];
  const batches: number[] = [];
  const perCall: number[] = [];
  for (;;) {
    const before = statements();
    const n = await store.publishBatch(2, (rows) => {
      sent.push(...rows.map((r) => r.id));
      return Promise.resolve();
    });
    batches.push(n);
    perCall.push(statements() - before);
    if (n === 0) break;
  }
  assert.deepEqual(batches, [2, 2, 1, 0]);
  // First batch: read, then mark + read; then mark + read per batch; last: read + release.
  assert.deepEqual(perCall, [2, 1, 1, 1], 'statements on the lock session per call');
  assert.deepEqual(
    sent.map(Number),
    [...sent.map(Number)].sort((a, b) => a - b),
    'in id order',
  );
  const unsent = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
  assert.equal(unsent.rows[0]?.n, 0, 'every batch marked sent');
  // This test's database only: relays of other tests or platforms on the same server hold theirs.
  const locks = await pool.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_locks
     WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
  );
  assert.equal(locks.rows[0]?.n, 0, 'the shards released once nothing was left');
});

test("a relay should mark rows sent without waiting for the WAL flush, and a service's commit should wait for it", async (t) => {
  // A mark lost to a crash only publishes its rows again (at least once); see pg-store.ts.
  const { pool, defer } = await outboxDatabase(t, 'durability');
  await writeOutbox(pool, `test.${run}.durability`, [liked('post-1', 1), liked('post-1', 2)]);
  const store = new PgOutboxStore(pool, { leaseMs: 30_000 });
  defer(() => store.close());
  const sessions = lockSessionStatements(t);
  assert.equal(await store.publishBatch(1, () => Promise.resolve()), 1);
  const session = sessions()[0];
  assert.ok(session, 'the relay ran its statements on a lock session');
  const relay = await session.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
  assert.equal(relay.rows[0]?.synchronous_commit, 'off', "the relay's lock session");
  const service = await pool.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
  assert.equal(service.rows[0]?.synchronous_commit, 'on', 'any other session of the same pool');
});

test("a relay's lock session should keep its lease and durability settings when DATABASE_URL gives its own options", async (t) => {
  const { databaseUrl, pool: plain, defer } = await outboxDatabase(t, 'url_options');
  await writeOutbox(plain, `test.${run}.url_options`, [liked('post-1', 1)]);
  // An operator's options in the URL (libpq's `options`: here a statement timeout for the service).
  const url = new URL(databaseUrl);
  url.searchParams.set('options', '-c statement_timeout=15000');
  const pool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  pool.on('error', () => undefined);
  defer(() => pool.end());
  const store = new PgOutboxStore(pool, { leaseMs: 30_000 });
  defer(() => store.close());
  assert.equal(await store.publishBatch(1, () => Promise.resolve()), 1);
  // The open lock session, read directly: lockSessionStatements finds it by its options, the subject here.
  const session = (store as unknown as { session?: pg.Client }).session ?? assert.fail('no lock session');
  const settings = await session.query<{ lease: string; durability: string; timeout: string }>(
    `SELECT current_setting('idle_session_timeout') AS lease, current_setting('synchronous_commit') AS durability,
            current_setting('statement_timeout') AS timeout`,
  );
  assert.deepEqual(settings.rows[0], { lease: '30s', durability: 'off', timeout: '15s' });
  const service = await pool.query<{ synchronous_commit: string }>('SHOW synchronous_commit');
  assert.equal(service.rows[0]?.synchronous_commit, 'on', "the service's own sessions stay durable");
});

test('a busy relay should take the shards another relay frees without going idle first', async (t) => {
  const { pool, defer } = await outboxDatabase(t, 'busy_take');
  const topic = `test.${run}.busy_take`;
  const busyKey = 'post-1';
  const freedKey = [...Array(100).keys()]
    .map((n) => `post-${n + 2}`)
    .find((key) => toOutboxMessage(liked(key, 1)).shard !== toOutboxMessage(liked(busyKey, 1)).shard);
  assert.ok(freedKey);
  await writeOutbox(
    pool,
    topic,
    [1, 2, 3, 4].map((seq) => liked(busyKey, seq)),
  );
  await writeOutbox(pool, topic, [liked(freedKey, 1)]);
  // Another relay holds the freed key's shard for now.
  const other = await pool.connect();
  defer(() => Promise.resolve(other.release()));
  await other.query('SELECT pg_advisory_lock($1, $2)', [0x0b0c, toOutboxMessage(liked(freedKey, 1)).shard]);
  const store = new PgOutboxStore(pool, { leaseMs: 30_000 });
  defer(() => store.close());
  const keys: string[] = [];
  const into = (rows: readonly { key: string }[]) => {
    keys.push(...rows.map((r) => r.key));
    return Promise.resolve();
  };
  assert.equal(await store.publishBatch(1, into), 1);
  await other.query('SELECT pg_advisory_unlock_all()');
  for (let n = 0; n < 4; n++) assert.equal(await store.publishBatch(1, into), 1, 'the relay finds a row every time');
  assert.deepEqual(keys.slice(0, 2), [busyKey, busyKey], 'the shard was not free for the first two batches');
  assert.ok(keys.includes(freedKey), 'the freed shard was taken while the relay was busy');
});

/**
 * Commits an outbox row and asserts it sent no NOTIFY: notifications arrive in commit order, so
 * once a marker NOTIFYed after the commit is here, a NOTIFY of the write would be here too.
 */
async function assertCommitSendsNoNotify(pool: pg.Pool, databaseUrl: string, what: string): Promise<void> {
  const listener = new pg.Client({ connectionString: databaseUrl });
  await listener.connect();
  try {
    const got: string[] = [];
    listener.on('notification', (n) => got.push(n.payload ?? ''));
    await listener.query(`LISTEN ${OUTBOX_CHANNEL}`);
    await writeOutbox(pool, `test.${run}.no-notify`, [liked('post-1', 1), liked('post-2', 1)]);
    await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'marker']);
    await waitUntil('the marker notification', 10_000, () => got.includes('marker'));
    assert.deepEqual(got, ['marker'], `${what}: committing outbox rows sends no NOTIFY`);
  } finally {
    await listener.end();
  }
}

test('committing outbox rows should send no NOTIFY, which would serialise every writer on the notify lock', async (t) => {
  // outbox.sql is the table as the migrations leave it; each service's migrations must agree.
  const { pool, databaseUrl } = await outboxDatabase(t, 'no_notify');
  await assertCommitSendsNoNotify(pool, databaseUrl, 'outbox.sql');
  for (const service of ['post-service', 'chat-service', 'notification-service']) {
    const url = testDatabaseUrl(`ripple_test_${run}_nn_${service.replace(/-/g, '_')}`);
    await ensureDatabase(url);
    const servicePool = new pg.Pool({ connectionString: url, max: 2 });
    try {
      await applyMigrations(url, join(ROOT, 'services', service, 'prisma/migrations'));
      await assertCommitSendsNoNotify(servicePool, url, service);
    } finally {
      await servicePool.end();
      await dropDatabase(url);
    }
  }
});

test('a listener should wake the relays of other processes with coalesced NOTIFYs', async (t) => {
  const { databaseUrl, defer } = await outboxDatabase(t, 'notify');
  let woken = 0;
  let senderUp = false;
  // Each listener calls back once when it has connected (rows may have arrived meanwhile).
  const receiver = listenForOutbox(databaseUrl, logger, () => woken++);
  defer(() => receiver.stop());
  const sender = listenForOutbox(databaseUrl, logger, () => (senderUp = true));
  defer(() => sender.stop());
  await waitUntil('both listeners to connect', 10_000, () => woken >= 1 && senderUp);

  // 50 commits in a burst: one NOTIFY at once, one at the end of the interval for the rest.
  for (let i = 0; i < 50; i++) sender.notify();
  await waitUntil('the immediate and the trailing NOTIFY', 10_000, () => woken >= 3);
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  defer(() => pool.end());
  await pool.query('SELECT pg_notify($1, $2)', [OUTBOX_CHANNEL, 'marker']);
  await waitUntil('the marker', 10_000, () => woken >= 4);
  assert.equal(woken, 4, '50 calls, 2 NOTIFYs (the marker is the fourth wake-up)');
});

/** A sample's value from a registry's text (`name` with its suffix, labels ignored); 0 when absent. */
async function sampleOf(metrics: Registry, name: string): Promise<number> {
  const match = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(await metrics.metrics());
  return Number(match?.[1] ?? 0);
}

test("commit → ack should count exactly the rows this process committed and woke with, not others'", async (t) => {
  const { databaseUrl, pool, defer } = await outboxDatabase(t, 'commit_ack');
  const kafka = createKafka({ brokers: testInfra.kafkaBrokers, clientId: 'outbox-test', logger });
  const prefix = `test.${run}.`;
  const topic = 'commit-ack';
  await ensureTopics(kafka, [{ topic: prefix + topic, numPartitions: 2, replicationFactor: 1 }]);
  defer(() => deleteTopics(kafka, [prefix + topic]));
  const producer = createEventProducer(kafka);
  await producer.connect();
  defer(() => producer.disconnect());
  const metrics = new Registry();
  const outbox = startOutboxService({
    databaseUrl,
    producer,
    topicPrefix: prefix,
    logger,
    metrics,
    batchSize: 100,
    pollIntervalMs: 50,
    leaseMs: 30_000,
    retentionMs: 3_600_000,
    shedWaitMs: 0,
  });
  defer(() => outbox.stop());
  outbox.startRelay();

  // Committed here and woken with their ids: 2 transactions of 3.
  const mine = [1, 2, 3, 4, 5, 6].map((seq) => liked(`post-${seq % 2}`, seq));
  for (const events of [mine.slice(0, 3), mine.slice(3)]) {
    await writeOutbox(pool, topic, events);
    outbox.wake(events.map((e) => e.id));
  }
  // Committed as by another process (no wake here): the poll finds them, the relay publishes them.
  await writeOutbox(
    pool,
    topic,
    [7, 8, 9, 10].map((seq) => liked('post-other', seq)),
  );
  // Woken with an id no row carries: never published, never observed.
  outbox.wake(['00000000-0000-4000-8000-000000000000']);

  await waitUntil('every row sent', 30_000, async () => {
    const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
    return rows[0]?.n === 0;
  });
  assert.equal(await sampleOf(metrics, 'outbox_publish_latency_seconds_count'), 10, 'the upper bound covers every row');
  assert.equal(await sampleOf(metrics, 'outbox_commit_to_ack_seconds_count'), 6, "commit → ack: this process's rows");
  assert.ok((await sampleOf(metrics, 'outbox_commit_to_ack_seconds_sum')) >= 0);
});

test('a clean-up should delete every sent row past retention, however many, and no other', async (t) => {
  // 25,000 rows a minute is 417 rows/s: one statement of 10,000 a minute, as the clean-up ran, fell
  // behind a relay at 167 rows/s or more and outbox_sent grew without bound.
  const { pool } = await outboxDatabase(t, 'retention');
  await pool.query(
    `INSERT INTO outbox_sent (id, event_id, topic, key, shard, value, headers, created_at, sent_at)
     SELECT i, gen_random_uuid(), 't', 'k', 0, '{}', '{}'::jsonb, now(), now() - CASE WHEN i <= 25000 THEN interval '2 hours' ELSE interval '1 minute' END
     FROM generate_series(1, 25010) i`,
  );
  const store = new PgOutboxStore(pool, { leaseMs: 30_000 });
  assert.equal(await store.deleteExpired(3_600_000), 25_000);
  const { rows } = await pool.query<{ first: string; n: number }>(
    'SELECT min(id) AS first, count(*)::int AS n FROM outbox_sent',
  );
  assert.deepEqual(rows[0], { first: '25001', n: 10 }, 'the rows within retention stay');
  let statements = 0;
  await pool.query(`UPDATE outbox_sent SET sent_at = now() - interval '2 hours'`);
  assert.equal(
    await store.deleteExpired(3_600_000, () => ++statements >= 1, 4),
    4,
    'stops when told to, after a statement',
  );
});

test('a relay should have PostgreSQL VACUUM the outbox every so many rows it moved, one VACUUM at a time', async (t) => {
  const { pool } = await outboxDatabase(t, 'vacuum');
  const vacuums: VacuumResult[] = [];
  const store = new PgOutboxStore(pool, { leaseMs: 30_000, vacuumAfterRows: 100, onVacuum: (v) => vacuums.push(v) });
  t.after(() => store.close());
  await writeOutbox(
    pool,
    'vacuumed',
    Array.from({ length: 260 }, (_, i) => liked('p', i + 1)),
  );
  let published = 0;
  while (published < 260) published += await store.publishBatch(50, () => Promise.resolve());
  await store.close(); // waits for the VACUUM it started
  // Marks after 50, 100 (VACUUM), 150, 200 (VACUUM), 250, 260: two, unless one still ran at 200.
  assert.ok(vacuums.length >= 1 && vacuums.length <= 2, `${vacuums.length} VACUUMs`);
  assert.deepEqual(
    vacuums.map((v) => v.outcome),
    vacuums.map(() => 'ok'),
  );
  await waitUntil('PostgreSQL counts a VACUUM of outbox', 5_000, async () => {
    const { rows } = await pool.query<{ vacuums: number }>(
      "SELECT vacuum_count::int AS vacuums FROM pg_stat_user_tables WHERE relname = 'outbox'",
    );
    return (rows[0]?.vacuums ?? 0) >= 1;
  });

  // While another session holds the table as a VACUUM would (autovacuum, another relay's), the
  // relay's own returns at once and says so.
  const holder = await pool.connect();
  try {
    await holder.query('BEGIN; LOCK TABLE outbox IN SHARE UPDATE EXCLUSIVE MODE');
    const held = new PgOutboxStore(pool, { leaseMs: 30_000, vacuumAfterRows: 100, onVacuum: (v) => vacuums.push(v) });
    await writeOutbox(
      pool,
      'vacuumed',
      Array.from({ length: 100 }, (_, i) => liked('q', i + 1)),
    );
    let moved = 0;
    while (moved < 100) moved += await held.publishBatch(100, () => Promise.resolve());
    await held.close();
    assert.equal(vacuums.at(-1)?.outcome, 'concurrent');
  } finally {
    await holder.query('ROLLBACK');
    holder.release();
  }
});

test('a relay whose role may not VACUUM the outbox should say its VACUUMs were skipped, and still publish', async (t) => {
  const { pool, databaseUrl, defer } = await outboxDatabase(t, 'vacuum_role');
  const writer = `ripple_test_${run}_relay`;
  defer(await createTestRoles(pool, [writer]));
  await pool.query(`GRANT SELECT, INSERT, DELETE ON outbox TO ${writer}; GRANT INSERT ON outbox_sent TO ${writer}`);
  const url = new URL(databaseUrl);
  url.username = writer;
  const relayPool = new pg.Pool({ connectionString: url.toString(), max: 2 });
  defer(() => relayPool.end());
  const vacuums: VacuumResult[] = [];
  const store = new PgOutboxStore(relayPool, {
    leaseMs: 30_000,
    vacuumAfterRows: 10,
    onVacuum: (v) => vacuums.push(v),
  });
  defer(() => store.close());
  await writeOutbox(
    pool,
    'vacuum-role',
    Array.from({ length: 20 }, (_, i) => liked('p', i + 1)),
  );
  let published = 0;
  while (published < 20) published += await store.publishBatch(10, () => Promise.resolve());
  await store.close();
  assert.ok(vacuums.length >= 1, 'a VACUUM was tried');
  for (const v of vacuums) {
    assert.equal(v.outcome, 'skipped');
    assert.match(v.outcome === 'skipped' ? v.reason : '', /owns neither/);
  }
});

/** A node of a plan as EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) describes it. */
interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows': number;
  'Rows Removed by Filter'?: number;
  'Shared Hit Blocks': number;
  'Shared Read Blocks': number;
  Plans?: PlanNode[];
}

/** Rows of `table` the scans of a plan read: those they returned and those their filter dropped. */
const rowsScanned = (node: PlanNode, table: string): number =>
  (node['Relation Name'] === table && node['Node Type'].endsWith('Scan')
    ? node['Actual Rows'] + (node['Rows Removed by Filter'] ?? 0)
    : 0) + (node.Plans ?? []).reduce((sum, child) => sum + rowsScanned(child, table), 0);

const SERVICES = ['post-service', 'chat-service', 'notification-service'] as const;

test("the relay's read should walk neither the rows a service keeps nor those it just published", async () => {
  // Each service's own schema, as its migrations make it, behind on a burst: 25,000 rows written,
  // then 20,000 of them published by a relay's store (batches of 500) and kept for
  // OUTBOX_RETENTION_MS, 5,000 still unsent, and a relay holding every shard reads its next batch.
  // Before (one table, published rows marked sent_at): each published row left an entry at the
  // head of the unsent index that this read walked: 20,000 rows scanned for a batch of 500 with
  // the index by (shard, id), and with the index by id every such entry, ~60 index pages, until a
  // VACUUM of the whole table (measured: 100,000 of them, 277 buffers and 1.4 ms a read).
  for (const service of SERVICES) {
    const url = testDatabaseUrl(`ripple_test_${run}_kept_${service.replace(/-/g, '_')}`);
    await ensureDatabase(url);
    const pool = new pg.Pool({ connectionString: url, max: 4 });
    const store = new PgOutboxStore(pool, { leaseMs: 30_000 });
    try {
      await applyMigrations(url, join(ROOT, 'services', service, 'prisma/migrations'));
      await pool.query(
        `INSERT INTO outbox (event_id, topic, key, shard, value, headers)
         SELECT gen_random_uuid(), 't', 'k' || i, i % 32, '{}', '{}'::jsonb FROM generate_series(1, 25000) i`,
      );
      let published = 0;
      while (published < 20_000) published += await store.publishBatch(500, () => Promise.resolve());
      await store.close(); // once the VACUUM it started has ended
      await pool.query('ANALYZE outbox');
      const { rows: counts } = await pool.query<{ kept: number; unsent: number }>(
        'SELECT (SELECT count(*)::int FROM outbox_sent) AS kept, (SELECT count(*)::int FROM outbox) AS unsent',
      );
      assert.deepEqual(counts[0], { kept: 20_000, unsent: 5_000 });
      const { rows } = await pool.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(
        `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${STEP_SQL}`,
        [[], 32, Array.from({ length: 32 }, (_, shard) => shard), 1, 500, true, [], null],
      );
      const plan = rows[0]?.['QUERY PLAN'][0]?.Plan;
      assert.ok(plan, 'a plan');
      const scanned = rowsScanned(plan, 'outbox');
      assert.ok(scanned <= 600, `${service}: ${scanned} rows scanned for a batch of 500`);
      const buffers = plan['Shared Hit Blocks'] + plan['Shared Read Blocks'];
      assert.ok(buffers <= 40, `${service}: ${buffers} buffers for a batch of 500`);
    } finally {
      await store.close();
      await pool.end();
      await dropDatabase(url);
    }
  }
});

test("the backlog metrics' query should read the live rows' pages, not every page a drained burst left", async (t) => {
  // outbox's file keeps the pages a backlog filled (VACUUM does not truncate it): 100,000 rows
  // written and drained (moved, then VACUUMed as the relay does), 20 written since.
  const { pool } = await outboxDatabase(t, 'backlog_query');
  const write = (n: number) =>
    pool.query(
      `INSERT INTO outbox (event_id, topic, key, shard, value, headers)
       SELECT gen_random_uuid(), 't', 'k' || i, i % 32, repeat('x', 300), '{}'::jsonb FROM generate_series(1, $1::int) i`,
      [n],
    );
  await write(100_000);
  await pool.query('DELETE FROM outbox');
  await pool.query('VACUUM (INDEX_CLEANUP ON, TRUNCATE OFF) outbox');
  await write(20);
  const { rows } = await pool.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(
    `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${BACKLOG_SQL}`,
  );
  const plan = rows[0]?.['QUERY PLAN'][0]?.Plan;
  assert.ok(plan, 'a plan');
  // min(created_at) over the table read all ~4,800 pages.
  const buffers = plan['Shared Hit Blocks'] + plan['Shared Read Blocks'];
  assert.ok(buffers <= 50, `${buffers} buffers`);
  const store = new PgOutboxStore(pool, { leaseMs: 30_000 });
  const backlog = await store.backlog();
  assert.equal(backlog.count, 20);
  assert.ok(backlog.oldestAgeSeconds >= 0 && backlog.oldestAgeSeconds < 60, `${backlog.oldestAgeSeconds} s`);
});

test("migrating to outbox_sent should keep every sent row where it was and every unsent row's id, and go on from it", async (t) => {
  // A service's database as the previous version left it: two rows published, one set aside,
  // two unsent.
  for (const service of SERVICES) {
    const url = testDatabaseUrl(`ripple_test_${run}_upgrade_${service.replace(/-/g, '_')}`);
    await ensureDatabase(url);
    t.after(() => dropDatabase(url));
    const all = join(ROOT, 'services', service, 'prisma/migrations');
    const before = mkdtempSync(join(tmpdir(), 'ripple-migrations-'));
    t.after(() => rmSync(before, { recursive: true, force: true }));
    for (const entry of readdirSync(all, { withFileTypes: true }))
      if (entry.isDirectory() && !entry.name.endsWith('_outbox_sent'))
        cpSync(join(all, entry.name), join(before, entry.name), { recursive: true });
    await applyMigrations(url, before);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    // The table's owner, and roles a service connects as, which do not own it: one granted the
    // table, one some columns. The migration runs as another role than the owner (a superuser).
    const roles = ['owner', 'writer', 'columns'].map(
      (role) => `ripple_test_${run}_${role}_${SERVICES.indexOf(service)}`,
    );
    const [owner, writer, columns] = roles;
    const dropRoles = await createTestRoles(client, roles);
    try {
      await client.query(`ALTER TABLE outbox OWNER TO ${owner}`);
      await client.query(`GRANT SELECT, INSERT, DELETE ON outbox TO ${writer}`);
      await client.query(
        `GRANT INSERT (event_id, topic, key, shard, value, headers), UPDATE (sent_at) ON outbox TO ${columns}`,
      );
      await client.query(
        `INSERT INTO outbox (event_id, topic, key, shard, value, headers, sent_at, refused)
         SELECT gen_random_uuid(), 't', 'k' || i, i, 'v' || i, '{}'::jsonb,
                CASE WHEN i <= 3 THEN now() - interval '1 hour' END, CASE WHEN i = 2 THEN 'KAFKA_MESSAGE_TOO_LARGE' END
         FROM generate_series(1, 5) i`,
      );
      const { applied } = await applyMigrations(url, all);
      assert.deepEqual(applied, [readdirSync(all).find((name) => name.endsWith('_outbox_sent'))]);
      const { rows: sent } = await client.query(
        'SELECT id::int, value, refused, sent_at IS NOT NULL AS sent FROM outbox_sent ORDER BY id',
      );
      assert.deepEqual(sent, [
        { id: 1, value: 'v1', refused: null, sent: true },
        { id: 2, value: 'v2', refused: 'KAFKA_MESSAGE_TOO_LARGE', sent: true },
        { id: 3, value: 'v3', refused: null, sent: true },
      ]);
      await client.query(
        `INSERT INTO outbox (event_id, topic, key, shard, value, headers) VALUES (gen_random_uuid(), 't', 'k6', 6, 'v6', '{}')`,
      );
      const { rows: unsent } = await client.query('SELECT id::int, value FROM outbox ORDER BY id');
      assert.deepEqual(unsent, [
        { id: 4, value: 'v4' },
        { id: 5, value: 'v5' },
        { id: 6, value: 'v6' },
      ]);
      const { rows: options } = await client.query<{ reloptions: string[] }>(
        "SELECT reloptions FROM pg_class WHERE relname = 'outbox'",
      );
      assert.ok(options[0]?.reloptions.includes('vacuum_truncate=false'), 'no truncation by autovacuum');
      const { rows: privileges } = await client.query<{ outbox: string[] }>(
        `SELECT array_agg(p ORDER BY p) FILTER (WHERE has_table_privilege($1, 'outbox', p)) AS outbox
         FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p`,
        [writer],
      );
      assert.deepEqual(privileges[0]?.outbox, ['DELETE', 'INSERT', 'SELECT'], "the old table's privileges");
      const { rows: owned } = await client.query<{ owner: string; inserts: boolean }>(
        `SELECT pg_get_userbyid(relowner) AS owner, has_column_privilege($1, 'outbox', 'value', 'INSERT') AS inserts
         FROM pg_class WHERE oid = 'outbox'::regclass`,
        [columns],
      );
      assert.deepEqual(owned[0], { owner, inserts: true }, "the old table's owner and column privileges");
    } finally {
      await dropRoles();
      await client.end();
    }
  }
});
