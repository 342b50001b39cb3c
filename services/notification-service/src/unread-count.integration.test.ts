import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createEvent } from '@ripple/events';
import type { DataOf, EventOf, EventType } from '@ripple/events';
import { waitUntil } from '@ripple/testing';
import { handleEvent } from './consumer.js';
import { notificationServiceTestApp } from './testing.js';

// Concurrent changes to one user's notifications on the real PostgreSQL, as two replicas of the
// service (or the consumer beside a read request) make them: the `notification.unread_count`
// events must still end on the true count, in the order the client receives them.
const svc = notificationServiceTestApp();

const now = () => new Date().toISOString();
const uuid = () => crypto.randomUUID();

function deliver<T extends EventType>(type: T, data: DataOf<T>) {
  return handleEvent(svc.bed.deps, createEvent(type, { source: 'unread-count-test', data }));
}
const like = (author: string, liker: string) =>
  deliver('post.liked', { postId: uuid(), postAuthorId: author, userId: liker, likeCount: 1, at: now() });

async function post(url: string, user: string) {
  const res = await svc.bed.call(svc.app, 'POST', url, user);
  assert.equal(res.status, 200, `${url}: ${JSON.stringify(res.json())}`);
  return res;
}

/** `user`'s unread notifications as the table holds them. */
async function trueCount(user: string): Promise<number> {
  const [row] = await svc.bed.deps.db.$queryRaw<{ n: bigint }[]>`
    SELECT count(*) AS n FROM notifications WHERE user_id = ${user} AND read_at IS NULL`;
  return Number(row?.n);
}

/** `user`'s `notification.unread_count` events, in outbox order: the order a client receives them (one key, one partition). */
async function countEvents(user: string): Promise<EventOf<'notification.unread_count'>['data'][]> {
  const rows = await svc.bed.deps.db.$queryRaw<{ value: string }[]>`
    SELECT value FROM outbox WHERE key = ${user} ORDER BY id`;
  return rows
    .map((r) => JSON.parse(r.value) as EventOf<EventType>)
    .filter((e): e is EventOf<'notification.unread_count'> => e.type === 'notification.unread_count')
    .map((e) => e.data);
}

/**
 * What is wrong with `user`'s count events, '' when nothing: a negative count, generations that
 * do not rise in the order received, or a last event (the one with the highest generation) that
 * does not carry the true count.
 */
async function countProblems(user: string): Promise<string> {
  const events = await countEvents(user);
  const truth = await trueCount(user);
  const last = events.at(-1);
  const counts = events.map((e) => e.count).join(',');
  if (last?.count !== truth) return `${user}: events ${counts} end on ${last?.count}, ${truth} unread`;
  if (events.some((e) => e.count < 0)) return `${user}: a negative count in ${counts}`;
  const generations = events.map((e) => e.generation ?? Number.NaN);
  if (!generations.every((g, i) => i === 0 || g > (generations[i - 1] ?? Number.NaN))) {
    return `${user}: generations ${generations.join(',')} do not rise in the order received`;
  }
  return '';
}

test('concurrent notifications and reads for one user should end on an unread_count event with the true count and the highest generation', async () => {
  const rounds = 20;
  const problems: string[] = [];
  for (let round = 0; round < rounds; round++) {
    const user = `cc${round}`;
    await like(user, 'early0');
    await like(user, 'early1');
    const [older, newer] = (
      await svc.bed.deps.db.notification.findMany({ where: { userId: user }, orderBy: { id: 'asc' } })
    ).map((n) => n.id);
    // Four consumer transactions, the same notification read twice, the other once, and a read-all.
    await Promise.all([
      ...[0, 1, 2, 3].map((i) => like(user, `liker${i}`)),
      post(`/notifications/${older}/read`, user),
      post(`/notifications/${older}/read`, user),
      post(`/notifications/${newer}/read`, user),
      ...(round % 2 === 0 ? [post('/notifications/read-all', user)] : []),
    ]);
    const problem = await countProblems(user);
    if (problem !== '') problems.push(problem);
    // The REST answer is the last event's count, at its generation: a client orders both alike.
    const served = await svc.bed.call(svc.app, 'GET', '/notifications/unread-count', user);
    const last = (await countEvents(user)).at(-1);
    assert.deepEqual(served.json(), { count: await trueCount(user), generation: last?.generation }, user);
  }
  assert.deepEqual(problems, [], `${problems.length} of ${rounds} rounds went wrong`);
});

test('events for overlapping users, handled concurrently, should not deadlock and should end on the true counts', async () => {
  const members = Array.from({ length: 30 }, (_, i) => `m${String(i).padStart(2, '0')}`);
  // Two rooms sharing 20 members, and posts mentioning 20 of them in text order, one way and the
  // other: a transaction that locked its recipients' counts in the order it met them would wait
  // for another in a cycle.
  const first = { roomId: uuid(), memberIds: ['s1', ...members.slice(0, 25)] };
  const second = { roomId: uuid(), memberIds: ['s2', ...members.slice(5).reverse()] };
  for (const room of [first, second]) {
    await deliver('chat.room.created', { ...room, name: 'r', createdBy: room.memberIds[0] ?? '', createdAt: now() });
  }
  const mentioned = members.slice(5, 25);
  const message = (roomId: string, senderId: string) =>
    deliver('chat.message.sent', { roomId, messageId: uuid(), senderId, body: 'hi @m12', sentAt: now() });
  const mentioning = (users: string[]) =>
    deliver('post.created', {
      postId: uuid(),
      authorId: 'poster',
      body: users.map((u) => `@${u}`).join(' '),
      createdAt: now(),
    });
  for (let round = 0; round < 8; round++) {
    await Promise.all([
      message(first.roomId, 's1'),
      message(second.roomId, 's2'),
      message(first.roomId, 's1'),
      message(second.roomId, 's2'),
      mentioning(mentioned),
      mentioning(mentioned.toReversed()),
      post('/notifications/read-all', 'm12'),
      post('/notifications/read-all', `m${10 + (round % 10)}`),
    ]);
  }
  const problems = (await Promise.all(members.map(countProblems))).filter((p) => p !== '');
  assert.deepEqual(problems, []);
});

test('a chat message handled while its room notification is being read should notify afresh, not fold into the read one', async () => {
  const roomId = uuid();
  await deliver('chat.room.created', { roomId, name: 'r', createdBy: 'fa', memberIds: ['fa', 'fb'], createdAt: now() });
  const message = () =>
    deliver('chat.message.sent', { roomId, messageId: uuid(), senderId: 'fa', body: 'hi', sentAt: now() });
  await message();
  const [open] = await svc.bed.deps.db.notification.findMany({ where: { userId: 'fb' } });
  assert.ok(open);

  // A read of that notification holds its row, uncommitted, while the next message is handled.
  let release = (): void => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let reading = false;
  const read = svc.bed.deps.transaction(async (tx) => {
    await tx.notification.update({ where: { id: open.id }, data: { readAt: new Date() } });
    await tx.$executeRaw`UPDATE unread_counts SET count = count - 1, generation = generation + 1 WHERE user_id = 'fb'`;
    reading = true;
    await gate;
  });
  await waitUntil('the read holding the notification', 10_000, () => reading);
  const handled = message();
  await waitUntil('the message waiting for the read', 10_000, async () => {
    const [row] = await svc.bed.deps.db.$queryRaw<{ n: bigint }[]>`
      SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
    return Number(row?.n) > 0;
  });
  release();
  await Promise.all([read, handled]);

  const notes = await svc.bed.deps.db.notification.findMany({ where: { userId: 'fb' }, orderBy: { id: 'asc' } });
  assert.deepEqual(
    notes.map((n) => [n.count, n.readAt === null]),
    [
      [1, false],
      [1, true],
    ],
    'the read notification as it was, and a new unread one',
  );
  assert.equal(await countProblems('fb'), '');
});
