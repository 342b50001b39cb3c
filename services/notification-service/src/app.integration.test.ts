import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createEvent } from '@ripple/events';
import type { DataOf, EventType } from '@ripple/events';
import { createRedis } from '@ripple/service';
import { createMetricsRegistry } from '@ripple/telemetry';
import { buildApp } from './app.js';
import { handleEvent } from './consumer.js';
import { notificationServiceTestApp } from './testing.js';

const svc = notificationServiceTestApp();

type Json = Record<string, unknown>;
interface Note {
  id: string;
  kind: string;
  actorId: string;
  subjectId: string;
  text: string;
  count: number;
  readAt: string | null;
}
interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
const call = (method: string, url: string, user: string | undefined, payload?: Json, key?: string) =>
  svc.bed.call(svc.app, method, url, user, payload, key);
const now = () => new Date().toISOString();

/** Delivers an event as the consumer does; returns it so a test can deliver it again. */
async function deliver<T extends EventType>(type: T, data: DataOf<T>) {
  const event = createEvent(type, { source: 'test', data });
  await handleEvent(svc.bed.deps, event);
  return event;
}
const notes = async (user: string, query = '') =>
  (await call('GET', `/notifications?limit=100${query}`, user)).json<Page<Note>>().items;
const unread = async (user: string) =>
  (await call('GET', '/notifications/unread-count', user)).json<{ count: number }>().count;
const postId = () => crypto.randomUUID();

test('a like or comment by someone else should notify the post author, never their own', async () => {
  const p = postId();
  await deliver('post.liked', { postId: p, postAuthorId: 'ann', userId: 'ben', likeCount: 1, at: now() });
  await deliver('post.liked', { postId: p, postAuthorId: 'ann', userId: 'ann', likeCount: 2, at: now() });
  await deliver('comment.created', {
    commentId: postId(),
    postId: p,
    postAuthorId: 'ann',
    authorId: 'ann',
    body: 'my own comment',
    createdAt: now(),
  });
  await deliver('comment.created', {
    commentId: postId(),
    postId: p,
    postAuthorId: 'ann',
    authorId: 'cid',
    body: 'great post',
    createdAt: now(),
  });
  const got = await notes('ann');
  assert.deepEqual(
    got.map((n) => [n.kind, n.actorId, n.subjectId]),
    [
      ['comment.created', 'cid', p],
      ['post.liked', 'ben', p],
    ],
  );
  assert.equal(await unread('ann'), 2);
  const emitted = (await svc.bed.events()).filter((e) => (e.data as Json).userId === 'ann');
  assert.deepEqual(
    emitted.map((e) => [e.type, (e.data as Json).count]),
    [
      ['notification.created', undefined],
      ['notification.unread_count', 1],
      ['notification.created', undefined],
      ['notification.unread_count', 2],
    ],
  );
});

test('a redelivered event should not notify twice', async () => {
  const event = await deliver('post.liked', {
    postId: postId(),
    postAuthorId: 'dup',
    userId: 'ben',
    likeCount: 1,
    at: now(),
  });
  assert.equal((await handleEvent(svc.bed.deps, event)).size, 0);
  assert.equal((await notes('dup')).length, 1);
});

test('mentions should notify the mentioned users once, not the actor, and in chats only members', async () => {
  const p = postId();
  await deliver('post.created', {
    postId: p,
    authorId: 'men',
    body: 'hi @mo and @mo, @men, email a@b, @zed!',
    createdAt: now(),
  });
  assert.deepEqual(
    (await notes('mo')).map((n) => [n.kind, n.actorId]),
    [['mention', 'men']],
  );
  assert.equal((await notes('zed')).length, 1);
  assert.equal((await notes('men')).length, 0);
  assert.equal((await notes('b')).length, 0);

  const roomId = postId();
  await deliver('chat.room.created', { roomId, name: 'r', createdBy: 'ra', memberIds: ['ra', 'rb'], createdAt: now() });
  await deliver('chat.message.sent', {
    roomId,
    messageId: postId(),
    senderId: 'ra',
    body: '@rb @outsider look',
    sentAt: now(),
  });
  assert.deepEqual((await notes('rb')).map((n) => n.kind).sort(), ['chat.message', 'mention']);
  assert.equal((await notes('outsider')).length, 0);
});

test('a burst of chat messages should fold into one unread notification per member and room', async () => {
  const roomId = postId();
  await deliver('chat.room.created', {
    roomId,
    name: 'r',
    createdBy: 'ca',
    memberIds: ['ca', 'cb', 'cc'],
    createdAt: now(),
  });
  const message = (senderId: string, body = 'hi') =>
    deliver('chat.message.sent', { roomId, messageId: postId(), senderId, body, sentAt: now() });
  for (let i = 0; i < 10; i++) await message('cb');
  for (const user of ['ca', 'cc']) {
    const got = await notes(user);
    assert.deepEqual(
      got.map((n) => [n.kind, n.subjectId, n.count, n.text]),
      [['chat.message', roomId, 10, '10 new messages in a chat']],
      user,
    );
    assert.equal(await unread(user), 1);
  }
  assert.equal((await notes('cb')).length, 0, 'the sender is not notified');

  const [first] = await notes('ca');
  assert.equal((await call('POST', `/notifications/${first?.id}/read`, 'ca')).status, 200);
  await message('cb');
  assert.deepEqual(
    (await notes('ca')).map((n) => [n.count, n.readAt === null]),
    [
      [1, true],
      [10, false],
    ],
  );
  assert.equal((await notes('cc'))[0]?.count, 11);

  await deliver('chat.member.left', { roomId, userId: 'cc', by: 'cc', at: now() });
  await deliver('chat.member.joined', { roomId, userId: 'cd', by: 'ca', at: now() });
  await message('ca');
  assert.equal((await notes('cc'))[0]?.count, 11, 'a member who left hears nothing more');
  assert.equal((await notes('cd')).length, 1);
});

test('the unread count should follow every change, with its generation', async () => {
  const p = postId();
  const res = async () => (await call('GET', '/notifications/unread-count', 'uc')).json();
  assert.deepEqual(await res(), { count: 0, generation: 0 });
  await deliver('post.liked', { postId: p, postAuthorId: 'uc', userId: 'u1', likeCount: 1, at: now() });
  await deliver('post.liked', { postId: p, postAuthorId: 'uc', userId: 'u2', likeCount: 2, at: now() });
  assert.deepEqual(await res(), { count: 2, generation: 2 });
  const [latest] = await notes('uc');
  await call('POST', `/notifications/${latest?.id}/read`, 'uc');
  assert.deepEqual(await res(), { count: 1, generation: 3 });
  const all = await call('POST', '/notifications/read-all', 'uc');
  assert.deepEqual(all.json(), { read: 1 });
  assert.deepEqual(await res(), { count: 0, generation: 4 });
  assert.deepEqual((await call('POST', '/notifications/read-all', 'uc')).json(), { read: 0 });
  const readEvents = (await svc.bed.events()).filter(
    (e) => e.type === 'notification.read' && (e.data as Json).userId === 'uc',
  );
  assert.deepEqual(
    readEvents.map((e) => (e.data as Json).all),
    [false, true],
  );
});

test('a count changed by a replica that cannot reach Redis should be served at once by the others', async (t) => {
  // Replica C shares the database but its Redis is a closed port: every command fails at once.
  const unreachable = createRedis('redis://127.0.0.1:1');
  t.after(() => unreachable.disconnect());
  const cDeps = { ...svc.bed.deps, redis: unreachable, metrics: createMetricsRegistry('replica-c') };
  const c = await buildApp(cDeps);
  t.after(() => c.close());
  const served = async () => (await call('GET', '/notifications/unread-count', 'nc')).json();
  const mention = () =>
    createEvent('post.created', {
      source: 'test',
      data: { postId: postId(), authorId: 'nm', body: 'hi @nc', createdAt: now() },
    });

  await deliver('post.created', { postId: postId(), authorId: 'nm', body: 'hi @nc', createdAt: now() });
  assert.deepEqual(await served(), { count: 1, generation: 1 });
  const readAll = await svc.bed.call(c, 'POST', '/notifications/read-all', 'nc');
  assert.deepEqual([readAll.status, readAll.json()], [200, { read: 1 }]);
  assert.deepEqual(await served(), { count: 0, generation: 2 }, 'after read-all on C');

  assert.equal((await handleEvent(cDeps, mention())).size, 1);
  assert.deepEqual(await served(), { count: 1, generation: 3 }, 'after C consumed a mention');
  const [latest] = await notes('nc', '&unread=true');
  assert.equal((await svc.bed.call(c, 'POST', `/notifications/${latest?.id}/read`, 'nc')).status, 200);
  assert.deepEqual(await served(), { count: 0, generation: 4 }, 'after a read on C');
});

test('marking read should be per user: another user’s notification is 404, a repeat changes nothing', async () => {
  await deliver('post.liked', { postId: postId(), postAuthorId: 'own', userId: 'x', likeCount: 1, at: now() });
  const [n] = await notes('own');
  const other = await call('POST', `/notifications/${n?.id}/read`, 'thief');
  assert.deepEqual([other.status, other.json().code], [404, 'NOTIFICATION_NOT_FOUND']);
  const first = await call('POST', `/notifications/${n?.id}/read`, 'own');
  const again = await call('POST', `/notifications/${n?.id}/read`, 'own');
  assert.equal(again.json<Note>().readAt, first.json<Note>().readAt);
  const events = (await svc.bed.events()).filter(
    (e) => e.type === 'notification.read' && (e.data as Json).userId === 'own',
  );
  assert.equal(events.length, 1);
});

test('the list should page newest first and filter unread', async () => {
  for (let i = 0; i < 5; i++) {
    await deliver('post.liked', { postId: postId(), postAuthorId: 'pg', userId: `l${i}`, likeCount: 1, at: now() });
  }
  const first = (await call('GET', '/notifications?limit=2', 'pg')).json<Page<Note>>();
  const second = (await call('GET', `/notifications?limit=2&cursor=${first.nextCursor}`, 'pg')).json<Page<Note>>();
  const third = (await call('GET', `/notifications?limit=2&cursor=${second.nextCursor}`, 'pg')).json<Page<Note>>();
  assert.deepEqual(
    [...first.items, ...second.items, ...third.items].map((n) => n.actorId),
    ['l4', 'l3', 'l2', 'l1', 'l0'],
  );
  assert.equal(third.nextCursor, null);
  await call('POST', `/notifications/${first.items[0]?.id}/read`, 'pg');
  assert.equal((await notes('pg', '&unread=true')).length, 4);
});

test('routes should require a token and validate their input', async () => {
  await svc.bed.assertTokensRequired(svc.app, [
    ['GET', '/notifications'],
    ['GET', '/notifications/unread-count'],
    ['POST', `/notifications/${postId()}/read`],
    ['POST', '/notifications/read-all'],
  ]);
  const cases: [string, string, string][] = [
    ['GET', '/notifications?limit=0', 'query.limit'],
    ['GET', '/notifications?unread=maybe', 'query.unread'],
    ['GET', '/notifications?cursor=abc', 'query.cursor'],
    ['POST', '/notifications/42/read', 'params.notificationId'],
    ['POST', '/notifications//read', 'params.notificationId'],
  ];
  for (const [method, url, field] of cases) {
    const res = await call(method, url, 'v');
    assert.deepEqual([res.status, res.json().field], [400, field], url);
  }
});

test('read-all with the same Idempotency-Key should answer the same and emit once', async () => {
  await deliver('post.liked', { postId: postId(), postAuthorId: 'idem', userId: 'x', likeCount: 1, at: now() });
  const first = await call('POST', '/notifications/read-all', 'idem', undefined, 'ra-1');
  const retry = await call('POST', '/notifications/read-all', 'idem', undefined, 'ra-1');
  assert.deepEqual(
    [first.json(), retry.json(), retry.headers['idempotent-replayed']],
    [{ read: 1 }, { read: 1 }, 'true'],
  );
  const events = (await svc.bed.events()).filter(
    (e) => e.type === 'notification.read' && (e.data as Json).userId === 'idem',
  );
  assert.equal(events.length, 1);
});

test('the OpenAPI document should describe every route with its security, errors and headers', async () => {
  await svc.bed.assertOpenApiConventions(svc.app);
});
