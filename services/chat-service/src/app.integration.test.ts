import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { DEVELOPMENT_JWT_SECRET, jwtSecret, verifySubscriptionToken } from '@ripple/auth';
import { Topics } from '@ripple/events';
import { apiTestbed } from '@ripple/service/testbed';
import { cleanupAll, waitFor } from '@ripple/testing';
import { buildApp } from './app.js';
import { createDb, transaction } from './db.js';

const migrationsDir = fileURLToPath(new URL('../prisma/migrations', import.meta.url));
const startBed = () => apiTestbed({ name: 'chat-service', migrationsDir, createDb, transaction });
let bed: Awaited<ReturnType<typeof startBed>>;
let app: FastifyInstance;
const secret = jwtSecret(DEVELOPMENT_JWT_SECRET);

before(async () => {
  bed = await startBed();
  app = await buildApp({
    ...bed.deps,
    subscriptionSecret: secret,
    subscriptionTokenTtlSeconds: 60,
    typingIntervalMs: 60_000,
  });
});
after(() =>
  cleanupAll(
    () => app?.close(),
    () => bed?.close(),
  ),
);

type Json = Record<string, unknown>;
interface Room {
  id: string;
  members: { userId: string; role: string }[];
}
interface Msg {
  id: string;
  body: string;
  senderId: string;
  editedAt: string | null;
}
interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
const call = (method: string, url: string, user: string | undefined, payload?: Json, key?: string | null) =>
  bed.call(app, method, url, user, payload, key);
const newRoom = async (owner: string, memberIds: string[] = []) =>
  (await call('POST', '/rooms', owner, { name: 'general', memberIds })).json<Room>();
const send = async (roomId: string, user: string, body: string) =>
  call('POST', `/rooms/${roomId}/messages`, user, { body });
const eventsOf = async (type: string, roomId: string) =>
  (await bed.events()).filter((e) => e.type === type && e.subject === roomId);

test('creating a room should make the creator its owner and announce it to every member', async () => {
  const res = await call('POST', '/rooms', 'alice', { name: 'team', memberIds: ['bob', 'alice', 'carol'] });
  assert.equal(res.status, 201);
  const room = res.json<Room>();
  assert.deepEqual(
    room.members.map((m) => [m.userId, m.role]),
    [
      ['alice', 'owner'],
      ['bob', 'member'],
      ['carol', 'member'],
    ],
  );
  const [created] = await eventsOf('chat.room.created', room.id);
  assert.deepEqual((created?.data as { memberIds: string[] }).memberIds, ['alice', 'bob', 'carol']);
});

test('the largest room the route takes (the creator and 100 others) should be a chat.room.created the catalog accepts', async () => {
  const owner = 'o'.repeat(128);
  const others = Array.from({ length: 100 }, (_, i) => `${i}`.padStart(128, 'm'));
  const res = await call('POST', '/rooms', owner, { name: 'n'.repeat(200), memberIds: others });
  assert.equal(res.status, 201, JSON.stringify(res.json()));
  const [created] = await eventsOf('chat.room.created', res.json<Room>().id);
  assert.deepEqual((created?.data as { memberIds: string[] }).memberIds, [owner, ...others]);
  const over = await call('POST', '/rooms', owner, { name: 'x', memberIds: [...others, 'one-more'] });
  assert.equal(over.status, 400, 'the route takes 100 others at most');
});

test('every route should answer 401 without a valid access token', async () => {
  const room = await newRoom('alice');
  const m = `/rooms/${room.id}/messages/${room.id}`;
  await bed.assertTokensRequired(app, [
    ['POST', '/rooms'],
    ['GET', '/rooms'],
    ['GET', `/rooms/${room.id}`],
    ['POST', `/rooms/${room.id}/members`],
    ['DELETE', `/rooms/${room.id}/members/bob`],
    ['POST', `/rooms/${room.id}/messages`],
    ['GET', `/rooms/${room.id}/messages`],
    ['PATCH', m],
    ['DELETE', m],
    ['POST', `/rooms/${room.id}/read`],
    ['POST', `/rooms/${room.id}/typing`],
    ['GET', `/rooms/${room.id}/subscription-token`],
  ]);
});

test('only members should read or write a room; outsiders get 403, unknown rooms 404', async () => {
  const room = await newRoom('alice', ['bob']);
  const mid = (await send(room.id, 'bob', 'hi')).json<Msg>().id;
  const outsider: [string, string, Json?][] = [
    ['GET', `/rooms/${room.id}`],
    ['GET', `/rooms/${room.id}/messages`],
    ['POST', `/rooms/${room.id}/messages`, { body: 'let me in' }],
    ['PATCH', `/rooms/${room.id}/messages/${mid}`, { body: 'x' }],
    ['DELETE', `/rooms/${room.id}/messages/${mid}`],
    ['POST', `/rooms/${room.id}/read`, { messageId: mid }],
    ['POST', `/rooms/${room.id}/typing`],
    ['GET', `/rooms/${room.id}/subscription-token`],
    ['POST', `/rooms/${room.id}/members`, { userId: 'mallory' }],
  ];
  for (const [method, url, payload] of outsider) {
    const res = await call(method, url, 'mallory', payload);
    assert.deepEqual([res.status, res.json().code], [403, 'ROOM_FORBIDDEN'], `${method} ${url}`);
  }
  const missing = `${'0'.repeat(8)}-0000-7000-8000-${'0'.repeat(12)}`;
  const notFound = await call('GET', `/rooms/${missing}/messages`, 'mallory');
  assert.deepEqual([notFound.status, notFound.json().code], [404, 'ROOM_NOT_FOUND']);
  const sendNowhere = await call('POST', `/rooms/${missing}/messages`, 'mallory', { body: 'anyone?' });
  assert.deepEqual([sendNowhere.status, sendNowhere.json().code], [404, 'ROOM_NOT_FOUND']);
  const history = (await call('GET', `/rooms/${room.id}/messages`, 'bob')).json<Page<Msg>>();
  assert.deepEqual(
    history.items.map((m) => m.body),
    ['hi'],
    'nothing an outsider sent was stored',
  );
  assert.deepEqual(
    (await call('GET', '/rooms', 'mallory')).json<Page<Room>>().items.map((r) => r.id),
    [],
  );
  assert.equal((await eventsOf('chat.message.sent', room.id)).length, 1);
});

test('the owner should add and remove members; members may leave; events follow each change', async () => {
  const room = await newRoom('alice', ['bob']);
  const notOwner = await call('POST', `/rooms/${room.id}/members`, 'bob', { userId: 'carol' });
  assert.deepEqual([notOwner.status, notOwner.json().code], [403, 'ROOM_OWNER_ONLY']);
  assert.equal((await call('POST', `/rooms/${room.id}/members`, 'alice', { userId: 'carol' })).status, 201);
  assert.equal((await call('POST', `/rooms/${room.id}/members`, 'alice', { userId: 'carol' })).status, 201);
  assert.equal((await call('GET', `/rooms/${room.id}/messages`, 'carol')).status, 200);

  const kick = await call('DELETE', `/rooms/${room.id}/members/carol`, 'bob');
  assert.deepEqual([kick.status, kick.json().code], [403, 'ROOM_OWNER_ONLY']);
  assert.equal((await call('DELETE', `/rooms/${room.id}/members/bob`, 'bob')).status, 204);
  assert.equal((await call('DELETE', `/rooms/${room.id}/members/carol`, 'alice')).status, 204);
  assert.equal((await call('DELETE', `/rooms/${room.id}/members/carol`, 'alice')).status, 404);
  const owner = await call('DELETE', `/rooms/${room.id}/members/alice`, 'alice');
  assert.deepEqual([owner.status, owner.json().code], [409, 'ROOM_OWNER_CANNOT_LEAVE']);
  assert.equal((await call('GET', `/rooms/${room.id}/messages`, 'carol')).status, 403);

  assert.deepEqual(
    (await eventsOf('chat.member.joined', room.id)).map((e) => (e.data as Json).userId),
    ['carol'],
  );
  assert.deepEqual(
    (await eventsOf('chat.member.left', room.id)).map((e) => [(e.data as Json).userId, (e.data as Json).by]),
    [
      ['bob', 'bob'],
      ['carol', 'alice'],
    ],
  );
});

test('messages should be sent, edited by the sender only and deleted by the sender or the owner', async () => {
  const room = await newRoom('alice', ['bob', 'carol']);
  const m1 = (await send(room.id, 'bob', 'hello')).json<Msg>();
  const m2 = (await send(room.id, 'carol', 'hey')).json<Msg>();
  const foreign = await call('PATCH', `/rooms/${room.id}/messages/${m1.id}`, 'carol', { body: 'mine now' });
  assert.deepEqual([foreign.status, foreign.json().code], [403, 'MESSAGE_FORBIDDEN']);
  const edited = await call('PATCH', `/rooms/${room.id}/messages/${m1.id}`, 'bob', { body: 'hello!' });
  assert.equal(edited.json<Msg>().body, 'hello!');
  assert.ok(edited.json<Msg>().editedAt);
  const del = await call('DELETE', `/rooms/${room.id}/messages/${m1.id}`, 'carol');
  assert.deepEqual([del.status, del.json().code], [403, 'MESSAGE_FORBIDDEN']);
  assert.equal((await call('DELETE', `/rooms/${room.id}/messages/${m1.id}`, 'bob')).status, 204);
  assert.equal((await call('DELETE', `/rooms/${room.id}/messages/${m2.id}`, 'alice')).status, 204);
  assert.equal((await call('DELETE', `/rooms/${room.id}/messages/${m2.id}`, 'alice')).status, 404);
  const types = (await bed.events()).filter((e) => e.subject === room.id).map((e) => e.type);
  assert.deepEqual(types, [
    'chat.room.created',
    'chat.message.sent',
    'chat.message.sent',
    'chat.message.edited',
    'chat.message.deleted',
    'chat.message.deleted',
  ]);
});

test('text with a NUL or a lone surrogate should answer 400 VALIDATION_FAILED on every route that stores it, not 500', async () => {
  const room = await newRoom('alice', ['bob']);
  const message = (await send(room.id, 'alice', 'hi')).json<Msg>();
  const before = (await bed.events()).length;
  for (const text of ['a\u0000b', '\ud800', 'x\udfffy']) {
    for (const [method, url, payload, field] of [
      ['POST', '/rooms', { name: text }, 'body.name'],
      ['POST', `/rooms/${room.id}/messages`, { body: text }, 'body.body'], // the batched insert
      ['PATCH', `/rooms/${room.id}/messages/${message.id}`, { body: text }, 'body.body'],
    ] as const) {
      const res = await call(method, url, 'alice', payload);
      assert.deepEqual(
        [res.status, res.json().code, res.json().field],
        [400, 'VALIDATION_FAILED', field],
        `${method} ${url} ${JSON.stringify(text)}`,
      );
    }
  }
  assert.equal((await bed.events()).length, before);
  assert.equal((await send(room.id, 'alice', 'party 🎉')).json<Msg>().body, 'party 🎉');
});

test('concurrent messages with one Idempotency-Key should write one message and one event; another body gets 422, never 500', async () => {
  const room = await newRoom('alice', ['bob']);
  const racing = await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      call('POST', `/rooms/${room.id}/messages`, 'bob', { body: i % 2 === 0 ? 'same' : 'other' }, 'k-race'),
    ),
  );
  const created = racing.filter((r) => r.status === 201);
  const refused = racing.filter((r) => r.status === 422);
  assert.equal(created.length + refused.length, 8, racing.map((r) => r.status).join(', '));
  assert.equal(new Set(created.map((r) => r.json<Msg>().id)).size, 1, 'one message, replayed');
  assert.ok(refused.every((r) => r.json().code === 'IDEMPOTENCY_KEY_REUSED'));
  assert.equal((await eventsOf('chat.message.sent', room.id)).length, 1);
});

test('message history should page newest first across exact boundaries', async () => {
  const room = await newRoom('alice');
  const ids: string[] = [];
  for (let i = 0; i < 7; i++) ids.push((await send(room.id, 'alice', `m${i}`)).json<Msg>().id);
  const seen: string[] = [];
  const sizes: number[] = [];
  let cursor: string | null = null;
  do {
    const url = `/rooms/${room.id}/messages?limit=3${cursor ? `&cursor=${cursor}` : ''}`;
    const page: Page<Msg> = (await call('GET', url, 'alice')).json<Page<Msg>>();
    sizes.push(page.items.length);
    seen.push(...page.items.map((m) => m.id));
    cursor = page.nextCursor;
  } while (cursor !== null);
  assert.deepEqual(sizes, [3, 3, 1]);
  assert.deepEqual(seen, [...ids].reverse());
  const bad = await call('GET', `/rooms/${room.id}/messages?cursor=%%%`, 'alice');
  assert.deepEqual([bad.status, bad.json().field], [400, 'query.cursor']);
});

test('listing my rooms should page and show only rooms I belong to', async () => {
  const mine = [await newRoom('lister'), await newRoom('other', ['lister']), await newRoom('lister')];
  await newRoom('other');
  const first = (await call('GET', '/rooms?limit=2', 'lister')).json<Page<Room>>();
  const second = (await call('GET', `/rooms?limit=2&cursor=${first.nextCursor}`, 'lister')).json<Page<Room>>();
  assert.deepEqual(
    [...first.items, ...second.items].map((r) => r.id),
    mine.map((r) => r.id).reverse(),
  );
  assert.equal(second.nextCursor, null);
});

test('read receipts should only move forward and emit chat.read when they do', async () => {
  const room = await newRoom('alice', ['bob']);
  const m1 = (await send(room.id, 'alice', 'one')).json<Msg>();
  const m2 = (await send(room.id, 'alice', 'two')).json<Msg>();
  const read = (messageId: string) => call('POST', `/rooms/${room.id}/read`, 'bob', { messageId });
  assert.deepEqual((await read(m2.id)).json(), { roomId: room.id, lastReadMessageId: m2.id });
  assert.deepEqual((await read(m1.id)).json(), { roomId: room.id, lastReadMessageId: m2.id });
  assert.equal((await read(room.id)).status, 404);
  assert.equal((await call('GET', `/rooms/${room.id}`, 'bob')).json<Room>().members[1]?.userId, 'bob');
  assert.equal((await eventsOf('chat.read', room.id)).length, 1);
});

test('typing should be published to Kafka at once, throttled per user and room, and never stored', async () => {
  const room = await newRoom('alice', ['bob']);
  await bed.connectKafka();
  const seen: Json[] = [];
  const reader = await bed.readTopics({
    groupId: `typing-${room.id}`,
    topics: [bed.topicPrefix + Topics.chat],
    fromBeginning: true,
    onMessage: (message) => {
      seen.push(JSON.parse(message.value?.toString() ?? '{}') as Json);
    },
  });
  try {
    const first = await call('POST', `/rooms/${room.id}/typing`, 'bob');
    assert.deepEqual([first.status, first.json()], [202, { published: true }]);
    const again = await call('POST', `/rooms/${room.id}/typing`, 'bob');
    assert.deepEqual([again.status, again.json().code], [429, 'TYPING_THROTTLED']);
    assert.ok(Number(again.headers['retry-after']) >= 1);
    assert.equal((await call('POST', `/rooms/${room.id}/typing`, 'alice')).status, 202);
    const typing = await waitFor('two typing events', 20_000, () => (seen.length >= 2 ? seen : undefined));
    assert.deepEqual(typing.map((e) => [e.type, (e.data as Json).userId]).sort(), [
      ['chat.typing', 'alice'],
      ['chat.typing', 'bob'],
    ]);
    assert.equal((await bed.events()).filter((e) => e.type === 'chat.typing').length, 0);
  } finally {
    await reader.stop();
  }
});

test('a subscription token should prove membership of chat:<roomId> to the gateway', async () => {
  const room = await newRoom('alice', ['bob']);
  const res = await call('GET', `/rooms/${room.id}/subscription-token`, 'bob');
  const { channel, token, expiresAt } = res.json<{ channel: string; token: string; expiresAt: string }>();
  assert.equal(channel, `chat:${room.id}`);
  assert.ok(Date.parse(expiresAt) > Date.now());
  await verifySubscriptionToken(secret, token, 'bob', channel);
  await assert.rejects(verifySubscriptionToken(secret, token, 'mallory', channel));
  await assert.rejects(verifySubscriptionToken(secret, token, 'bob', 'chat:other'));
});

test('a retried message POST with the same Idempotency-Key should not send twice', async () => {
  const room = await newRoom('alice');
  const first = await call('POST', `/rooms/${room.id}/messages`, 'alice', { body: 'once' }, 'k1');
  const retry = await call('POST', `/rooms/${room.id}/messages`, 'alice', { body: 'once' }, 'k1');
  assert.deepEqual(retry.json(), first.json());
  const reused = await call('POST', `/rooms/${room.id}/messages`, 'alice', { body: 'twice' }, 'k1');
  assert.equal(reused.status, 422);
  assert.equal((await eventsOf('chat.message.sent', room.id)).length, 1);
});

const batchedMessages = () => bed.batchedItems('messages.insert');

test('messages sent at once by members and outsiders should share statements, each getting its own answer', async () => {
  const room = await newRoom('alice', ['bob']);
  const unknownRoom = '01900000-0000-7000-8000-000000000000';
  const before = await batchedMessages();
  const sends = [
    ...Array.from({ length: 10 }, (_, i) => ['alice', room.id, `a${i}`, 201] as const),
    ...Array.from({ length: 10 }, (_, i) => ['bob', room.id, `b${i}`, 201] as const),
    ...Array.from({ length: 5 }, (_, i) => ['mallory', room.id, `m${i}`, 403] as const),
    ...Array.from({ length: 5 }, (_, i) => ['alice', unknownRoom, `u${i}`, 404] as const),
  ];
  const answers = await Promise.all(
    sends.map(([user, roomId, body]) => call('POST', `/rooms/${roomId}/messages`, user, { body }, null)),
  );
  assert.deepEqual(
    answers.map((a) => a.status),
    sends.map(([, , , status]) => status),
  );
  // Every request went through the batched statement once (outsiders are refused after it).
  assert.equal((await batchedMessages()) - before, sends.length);
  const sent = answers.filter((a) => a.status === 201).map((a) => a.json<Msg>());
  const events = await eventsOf('chat.message.sent', room.id);
  assert.deepEqual(events.map((e) => (e.data as { messageId: string }).messageId).sort(), sent.map((m) => m.id).sort());
  const page = (await call('GET', `/rooms/${room.id}/messages?limit=100`, 'alice')).json<Page<Msg>>();
  assert.deepEqual(page.items.map((m) => m.body).sort(), sent.map((m) => m.body).sort());
});

test('invalid input should answer 400 naming the field', async () => {
  const room = await newRoom('alice');
  const cases: [string, string, Json | undefined, string][] = [
    ['POST', '/rooms', { name: '' }, 'body.name'],
    ['POST', '/rooms', { name: 'x', memberIds: ['ok', 'ok'] }, 'body.memberIds'],
    ['POST', '/rooms', { name: 'x', memberIds: ['bad id'] }, 'body.memberIds.0'],
    ['POST', `/rooms/${room.id}/members`, { userId: 42 }, 'body.userId'],
    ['POST', `/rooms/${room.id}/messages`, {}, 'body.body'],
    ['POST', `/rooms/${room.id}/read`, { messageId: 'nope' }, 'body.messageId'],
    ['GET', '/rooms/nope/messages', undefined, 'params.roomId'],
    ['GET', '/rooms?limit=1000', undefined, 'query.limit'],
    // An empty id is a malformed one (the contract holds it to the route's own answers).
    ['GET', '/rooms/', undefined, 'params.roomId'],
    ['GET', '/rooms//messages', undefined, 'params.roomId'],
    ['DELETE', `/rooms/${room.id}/members/`, undefined, 'params.userId'],
  ];
  for (const [method, url, payload, field] of cases) {
    const res = await call(method, url, 'alice', payload);
    assert.deepEqual([res.status, res.json().code, res.json().field], [400, 'VALIDATION_FAILED', field], url);
  }
});

test('the OpenAPI document should describe every route with its security, errors and headers', async () => {
  await bed.assertOpenApiConventions(app, { unkeyed: ['POST /rooms/{roomId}/typing'] });
});
