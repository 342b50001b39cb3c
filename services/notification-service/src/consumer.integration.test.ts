import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { createEvent, toOutboxMessage } from '@ripple/events';
import type { AnyEvent, DataOf, EventType } from '@ripple/events';
import { createEventProducer, createKafka, deleteGroups, deleteTopics, dlqTopicOf } from '@ripple/kafka';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { apiTestbed } from '@ripple/service/testbed';
import { cleanupAll, runId, testInfra, waitUntil } from '@ripple/testing';
import { SOURCE_TOPICS, startNotificationConsumer } from './consumer.js';
import { createDb, transaction } from './db.js';

// A stale consumer of notification-service, on the real Kafka, PostgreSQL and Redis: consumer A is
// held right before the transaction of an event (as a process paused by SIGSTOP, a GC or a slow
// connection would be) while consumer B takes its partitions over and handles the same events and
// later ones; then A goes on with what it held.
const migrationsDir = fileURLToPath(new URL('../prisma/migrations', import.meta.url));
const startBed = () => apiTestbed({ name: 'notification-service', migrationsDir, createDb, transaction });
let bed: Awaited<ReturnType<typeof startBed>>;
const cleanups: (() => Promise<unknown>)[] = [];
const logger = createLogger('stale-consumer-test', 'silent');

before(async () => {
  bed = await startBed();
});
after(() => cleanupAll(...cleanups.reverse(), () => bed?.close()));

function event<T extends EventType>(type: T, data: DataOf<T>): AnyEvent {
  return createEvent(type, { source: 'stale-consumer-test', data });
}

/** Everything the consumer writes that a replay could change, in a stable order. */
async function state() {
  const db = bed.deps.db;
  const [notifications, members, outbox, processed, counts] = await Promise.all([
    db.$queryRaw`SELECT user_id, kind, actor_id, subject_id, text, count, read_at FROM notifications ORDER BY id`,
    db.$queryRaw`SELECT room_id, user_id FROM room_members ORDER BY room_id, user_id`,
    db.$queryRaw`SELECT event_id, topic, key, value FROM outbox ORDER BY id`,
    db.$queryRaw<{ n: bigint }[]>`SELECT count(*) AS n FROM processed_events`,
    db.$queryRaw`SELECT user_id, count, generation FROM unread_counts ORDER BY user_id`,
  ]);
  return { notifications, members, outbox, processed: Number(processed[0]?.n ?? 0), counts };
}

test('a stale consumer that goes on after a later owner of its partitions handled its events should change nothing: no notification twice, no member back, no count event', async () => {
  const run = runId();
  const topicPrefix = `test.${run}.stale.`;
  const groupId = `${topicPrefix}notification-service`;
  const kafka = createKafka({ brokers: testInfra.kafkaBrokers, clientId: 'stale-consumer-test', logger });
  const topics = SOURCE_TOPICS.map((t) => topicPrefix + t);
  cleanups.push(
    () => deleteTopics(kafka, [...topics, ...topics.map(dlqTopicOf)]),
    () => deleteGroups(kafka, (group) => group === groupId),
  );
  const producer = createEventProducer(kafka);
  await producer.connect();
  cleanups.push(() => producer.disconnect());
  const publish = (list: readonly AnyEvent[]) =>
    producer.send(
      list.map((e) => {
        const message = toOutboxMessage(e);
        return { ...message, topic: topicPrefix + message.topic };
      }),
    );

  const consumer = (clientId: string, deps: typeof bed.deps) => {
    const c = startNotificationConsumer({
      deps,
      kafka: createKafka({ brokers: testInfra.kafkaBrokers, clientId, logger }),
      producer,
      logger,
      topicPrefix,
      groupId,
      partitions: 1,
      replicationFactor: 1,
      sessionTimeoutMs: 6000,
      metrics: createMetricsRegistry(clientId),
    });
    cleanups.push(() => c.stop());
    return c;
  };

  // A's transactions wait at the gate until it opens: A holds the first event it was handed.
  let open = false;
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let held = 0;
  let replayed = 0;
  const stale = consumer('stale-consumer-a', {
    ...bed.deps,
    transaction: async (fn) => {
      if (!open) {
        held += 1;
        await gate;
      }
      try {
        return await bed.deps.transaction(fn);
      } finally {
        replayed += 1;
      }
    },
  });
  await stale.start();

  const now = Date.parse('2026-01-01T00:00:00.000Z');
  const at = (s: number) => new Date(now + s * 1000).toISOString();
  const first = [
    event('chat.room.created', {
      roomId: 'r1',
      name: 'r1',
      createdBy: 'ann',
      memberIds: ['ann', 'ben', 'cid'],
      createdAt: at(0),
    }),
    event('chat.message.sent', { roomId: 'r1', messageId: 'm1', senderId: 'ann', body: 'hi @cid', sentAt: at(1) }),
    event('chat.member.left', { roomId: 'r1', userId: 'cid', by: 'cid', at: at(2) }),
    event('post.liked', { postId: 'p1', postAuthorId: 'ann', userId: 'ben', likeCount: 1, at: at(3) }),
  ];
  const later = [
    event('chat.member.joined', { roomId: 'r1', userId: 'dan', by: 'ann', at: at(4) }),
    event('chat.message.sent', { roomId: 'r1', messageId: 'm2', senderId: 'ann', body: 'welcome', sentAt: at(5) }),
    event('post.liked', { postId: 'p1', postAuthorId: 'ann', userId: 'cid', likeCount: 2, at: at(6) }),
  ];
  await publish(first);
  await waitUntil('consumer A holding an event before its transaction', 30_000, () => held > 0);

  // B joins; A, held, stops heartbeating and is dropped from the group: B handles everything.
  await consumer('stale-consumer-b', bed.deps).start();
  await publish(later);
  const all = [...first, ...later];
  await waitUntil('consumer B handling every event', 60_000, async () => (await state()).processed === all.length);
  const handledByB = await state();

  // A goes on with the event it held (and whatever else it still has) after B handled them.
  open = true;
  release();
  await waitUntil('consumer A finishing the event it held', 30_000, () => replayed >= 1);
  assert.deepEqual(await state(), handledByB, 'the stale consumer changed nothing');

  // Nothing is lost after it either: the next event is handled once, by whichever owns it now.
  const last = event('post.liked', { postId: 'p1', postAuthorId: 'ann', userId: 'dan', likeCount: 3, at: at(7) });
  await publish([last]);
  await waitUntil('the next event handled', 60_000, async () => (await state()).processed === all.length + 1);
  const { notifications, members } = await state();
  assert.deepEqual(members, [
    { room_id: 'r1', user_id: 'ann' },
    { room_id: 'r1', user_id: 'ben' },
    { room_id: 'r1', user_id: 'dan' },
  ]);
  assert.deepEqual(
    // The two topics are handled independently: their notifications in any order.
    (notifications as { user_id: string; kind: string; actor_id: string; count: number }[])
      .map((n) => `${n.user_id} ${n.kind} by ${n.actor_id} x${n.count}`)
      .sort(),
    [
      'ann post.liked by ben x1',
      'ann post.liked by cid x1',
      'ann post.liked by dan x1',
      'ben chat.message by ann x2',
      'cid chat.message by ann x1',
      'cid mention by ann x1',
      'dan chat.message by ann x1',
    ],
  );
});
