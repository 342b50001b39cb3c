import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { RippleError } from '@ripple/errors';
import {
  Catalog,
  OUTBOX_SHARDS,
  Topics,
  channelsFor,
  createEvent,
  decodeEvent,
  outboxShardOf,
  partitionKeyFor,
  renderAsyncApi,
  toOutboxMessage,
  topicFor,
  validateEvent,
} from './index.js';
import type { DataOf, EventType } from './index.js';

const at = '2026-11-21T10:00:00.000Z';

/** One valid `data` per event type: the catalog test fails when a type has none. */
const samples: { [T in EventType]: DataOf<T> } = {
  'post.created': { postId: 'p1', authorId: 'u1', body: 'hello', createdAt: at },
  'post.updated': { postId: 'p1', authorId: 'u1', body: 'hello again', updatedAt: at },
  'post.deleted': { postId: 'p1', authorId: 'u1', deletedAt: at },
  'post.liked': { postId: 'p1', postAuthorId: 'u1', userId: 'u2', likeCount: 1, at },
  'post.unliked': { postId: 'p1', postAuthorId: 'u1', userId: 'u2', likeCount: 0, at },
  'comment.created': { commentId: 'c1', postId: 'p1', postAuthorId: 'u1', authorId: 'u2', body: 'nice', createdAt: at },
  'comment.deleted': { commentId: 'c1', postId: 'p1', postAuthorId: 'u1', deletedBy: 'u2', deletedAt: at },
  'chat.room.created': { roomId: 'r1', name: 'general', createdBy: 'u1', memberIds: ['u1', 'u2'], createdAt: at },
  'chat.member.joined': { roomId: 'r1', userId: 'u3', by: 'u1', at },
  'chat.member.left': { roomId: 'r1', userId: 'u3', by: 'u3', at },
  'chat.message.sent': { roomId: 'r1', messageId: 'm1', senderId: 'u1', body: 'hi', sentAt: at },
  'chat.message.edited': { roomId: 'r1', messageId: 'm1', senderId: 'u1', body: 'hi!', editedAt: at },
  'chat.message.deleted': { roomId: 'r1', messageId: 'm1', deletedBy: 'u1', deletedAt: at },
  'chat.typing': { roomId: 'r1', userId: 'u1', at },
  'chat.read': { roomId: 'r1', userId: 'u2', messageId: 'm1', readAt: at },
  'notification.created': {
    notificationId: 'n1',
    userId: 'u1',
    kind: 'post.liked',
    actorId: 'u2',
    subjectId: 'p1',
    text: 'u2 liked your post',
    createdAt: at,
  },
  'notification.read': { userId: 'u1', notificationIds: ['n1'], all: false, readAt: at },
  'notification.unread_count': { userId: 'u1', count: 3 },
  'presence.online': { userId: 'u1', connectionId: 'c-1', nodeId: 'node-1', at },
  'presence.offline': { userId: 'u1', connectionId: 'c-1', nodeId: 'node-1', at },
  'user.followed': { followerId: 'u1', followeeId: 'u2', at },
  'user.unfollowed': { followerId: 'u1', followeeId: 'u2', at },
};

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'valid';
  } catch (err) {
    return err instanceof RippleError ? err.code : `unexpected ${String(err)}`;
  }
}

function envelope(type: EventType, data: unknown): Record<string, unknown> {
  return {
    specversion: '1.0',
    id: '7d444840-9dc0-11d1-b245-5ffdce74fad2',
    source: 'test',
    type,
    time: at,
    subject: 'x',
    datacontenttype: 'application/json',
    dataschema: Catalog[type].dataschema,
    data,
  };
}

/** Payloads that must fail: each field missing, mistyped or emptied, plus an unknown field. */
function badVariants(data: Record<string, unknown>): [string, unknown][] {
  const variants: [string, unknown][] = [
    ['extra field', { ...data, surprise: true }],
    ['not an object', 'text'],
  ];
  for (const key of Object.keys(data)) {
    variants.push([`${key} missing`, Object.fromEntries(Object.entries(data).filter(([k]) => k !== key))]);
    variants.push([`${key} mistyped`, { ...data, [key]: typeof data[key] === 'number' ? 'seven' : { nested: 1 } }]);
    if (typeof data[key] === 'string') variants.push([`${key} empty`, { ...data, [key]: '' }]);
  }
  return variants;
}

test('the catalog should hold every DESIGN.md event type, at least 18', () => {
  assert.ok(Object.keys(Catalog).length >= 18);
  assert.deepEqual(Object.keys(samples).sort(), Object.keys(Catalog).sort());
});

test('every catalog schema should accept a good payload and reject a sample of bad ones', () => {
  for (const [type, data] of Object.entries(samples) as [EventType, Record<string, unknown>][]) {
    assert.equal(
      codeOf(() => validateEvent(envelope(type, data))),
      'valid',
      type,
    );
    for (const [what, bad] of badVariants(data)) {
      assert.equal(
        codeOf(() => validateEvent(envelope(type, bad))),
        'EVENT_INVALID',
        `${type}: ${what}`,
      );
    }
  }
});

test('envelopes should reject bad CloudEvents attributes', () => {
  const good = envelope('post.created', samples['post.created']);
  for (const [attr, value] of [
    ['id', 'not-a-uuid'],
    ['specversion', '0.3'],
    ['time', 'yesterday'],
    ['datacontenttype', 'text/plain'],
    ['source', ''],
    ['type', 'post.exploded'],
  ] as const) {
    assert.notEqual(
      codeOf(() => validateEvent({ ...good, [attr]: value })),
      'valid',
      attr,
    );
  }
});

test('createEvent should fill the envelope and use the aggregate id as subject', () => {
  const event = createEvent('comment.created', { source: 'post-service', data: samples['comment.created'] });
  assert.match(event.id, /^[0-9a-f-]{36}$/);
  assert.equal(event.subject, 'p1');
  assert.equal(event.dataschema, 'urn:ripple:schema:comment.created:1');
  assert.equal(
    codeOf(() => createEvent('post.created', { source: 's', data: { ...samples['post.created'], body: '' } })),
    'EVENT_INVALID',
  );
});

test('the routing table should send each event to the channels of DESIGN.md §4', () => {
  const route = (type: EventType) => channelsFor(createEvent(type, { source: 't', data: samples[type] }));
  assert.deepEqual(route('post.created'), ['creator:u1', 'user:u1']);
  assert.deepEqual(route('post.updated'), ['creator:u1', 'post:p1']);
  assert.deepEqual(route('post.liked'), ['post:p1']);
  assert.deepEqual(route('comment.created'), ['post:p1']);
  assert.deepEqual(route('chat.room.created'), ['user:u1', 'user:u2']);
  assert.deepEqual(route('chat.member.joined'), ['chat:r1', 'user:u3']);
  assert.deepEqual(route('chat.message.sent'), ['chat:r1']);
  assert.deepEqual(route('notification.unread_count'), ['user:u1']);
  assert.deepEqual(route('presence.online'), ['user:u1']);
  assert.deepEqual(route('user.followed'), ['user:u1']);
});

test('topics and keys should keep one aggregate on one partition key', () => {
  const event = (type: EventType) => createEvent(type, { source: 't', data: samples[type] });
  assert.equal(topicFor(event('post.liked')), 'post.events.v1');
  assert.equal(partitionKeyFor(event('comment.deleted')), 'u1', "a post's events go with its author's");
  assert.equal(topicFor(event('chat.typing')), 'chat.events.v1');
  assert.equal(partitionKeyFor(event('chat.read')), 'r1');
  assert.equal(topicFor(event('user.unfollowed')), 'user.events.v1');
  assert.equal(partitionKeyFor(event('user.unfollowed')), 'u1', 'a follower keeps the order of their follows');
  assert.equal(topicFor(event('notification.read')), 'notification.events.v1');
  assert.equal(partitionKeyFor(event('notification.created')), 'u1');
});

test("every post topic event should be keyed by the post's author, so an author's posts and each post's events keep their order", () => {
  const postTypes = (Object.keys(Catalog) as EventType[]).filter((type) => Catalog[type].topic === Topics.post);
  assert.deepEqual(postTypes.sort(), [
    'comment.created',
    'comment.deleted',
    'post.created',
    'post.deleted',
    'post.liked',
    'post.unliked',
    'post.updated',
  ]);
  for (const type of postTypes) {
    const other = { ...samples[type], postId: 'p2' } as DataOf<typeof type>;
    const first = createEvent(type, { source: 't', data: samples[type] });
    const second = createEvent(type, { source: 't', data: other });
    // Two posts of u1: one key (one partition, one outbox shard); the subject stays the post.
    assert.equal(partitionKeyFor(first), 'u1', type);
    assert.equal(partitionKeyFor(second), 'u1', type);
    assert.equal(toOutboxMessage(first, {}).shard, toOutboxMessage(second, {}).shard, type);
    assert.equal(first.subject, 'p1', type);
    assert.equal(second.subject, 'p2', type);
  }
});

test('toOutboxMessage should carry CloudEvents headers, the trace context and a stable shard', () => {
  const event = createEvent('post.liked', { source: 'post-service', data: samples['post.liked'] });
  const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const message = toOutboxMessage(event, { traceparent, tracestate: 'a=b' });
  assert.equal(message.headers.ce_type, 'post.liked');
  assert.equal(message.headers.ce_id, event.id);
  assert.equal(message.headers.traceparent, traceparent);
  assert.equal(message.headers.tracestate, 'a=b');
  assert.equal(message.key, 'u1');
  assert.equal(message.shard, outboxShardOf('u1'));
  assert.ok(message.shard >= 0 && message.shard < OUTBOX_SHARDS);
  assert.equal(toOutboxMessage(event, { traceparent: 'garbage' }).headers.traceparent, undefined);
});

test('a count should be refused past the largest integer a reader holds exactly', () => {
  const event = createEvent('post.liked', { source: 't', data: samples['post.liked'] });
  // 1e300 and 2^53 + 1 pass an integer check; every JSON reader in JavaScript reads the second as 2^53.
  for (const likeCount of [1e300, Number.MAX_SAFE_INTEGER + 2]) {
    const text = JSON.stringify({ ...event, data: { ...event.data, likeCount } });
    assert.equal(
      codeOf(() => decodeEvent(text)),
      'EVENT_INVALID',
      String(likeCount),
    );
  }
  const largest = { ...event, data: { ...event.data, likeCount: Number.MAX_SAFE_INTEGER } };
  assert.equal(decodeEvent(JSON.stringify(largest)).type, 'post.liked');
});

test('decodeEvent should name unknown types and non-JSON values', () => {
  assert.equal(
    codeOf(() => decodeEvent(Buffer.from('{"type":"post.exploded"}'))),
    'EVENT_UNKNOWN_TYPE',
  );
  assert.equal(
    codeOf(() => decodeEvent(Buffer.from('{nope'))),
    'EVENT_INVALID',
  );
  assert.equal(
    codeOf(() => decodeEvent(null)),
    'EVENT_INVALID',
  );
  const event = createEvent('chat.typing', { source: 't', data: samples['chat.typing'] });
  assert.equal(decodeEvent(JSON.stringify(event)).type, 'chat.typing');
});

test('docs/asyncapi.yaml should be up to date with the catalog (run `pnpm asyncapi`)', () => {
  const committed = readFileSync(new URL('../../../docs/asyncapi.yaml', import.meta.url), 'utf8');
  assert.equal(committed, renderAsyncApi());
  for (const type of Object.keys(Catalog)) assert.ok(committed.includes(`${type}:`), type);
});

test('every channel of docs/asyncapi.yaml should say once what its key keeps in order', () => {
  const descriptions = [...renderAsyncApi().matchAll(/^ {4}description: (.*)$/gm)].map((m) => m[1] ?? '');
  assert.ok(descriptions.length >= Object.values(Topics).length);
  for (const description of descriptions) {
    assert.ok((description.match(/in order/g) ?? []).length <= 1, description);
    assert.ok(!/\b(\w+ \w+ \w+)\b.*\b\1\b/.test(description.replace(/\.dlq/g, '')), description);
  }
});
