import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RawSql } from '@ripple/db';
import { eventsWritten, outboxEmitter, outboxMessages, recordingEvents } from './events.js';

/** A transaction that accepts every statement (unit test: the SQL itself is not under test here). */
const acceptingTx: RawSql = {
  $executeRaw: () => Promise.resolve(1),
  $queryRaw: <T>() => Promise.resolve([] as T),
};

test('recordingEvents should report the ids of the events made within it, by emit and outboxMessage', async () => {
  const emit = outboxEmitter('test');
  const outboxMessage = outboxMessages('test');
  const data = { postId: 'p1', postAuthorId: 'a', userId: 'u', likeCount: 1, at: new Date().toISOString() };
  const { ids, made } = await recordingEvents(async () => {
    const emitted = await emit(acceptingTx, 'post.liked', data);
    const built = outboxMessage('post.liked', data);
    return { ids: eventsWritten(), made: [emitted.id, built.message.eventId] };
  });
  assert.deepEqual(ids, made);
});

test('recordingEvents should keep concurrent units of work apart, and record nothing outside one', async () => {
  const outboxMessage = outboxMessages('test');
  const data = { postId: 'p1', postAuthorId: 'a', userId: 'u', likeCount: 1, at: new Date().toISOString() };
  outboxMessage('post.liked', data);
  assert.deepEqual(eventsWritten(), [], 'outside a unit of work nothing is recorded');
  const unit = () =>
    recordingEvents(async () => {
      const first = outboxMessage('post.liked', data).event.id;
      await new Promise((resolve) => setImmediate(resolve)); // the other unit runs meanwhile
      const second = outboxMessage('post.liked', data).event.id;
      return { ids: eventsWritten(), made: [first, second] };
    });
  const results = await Promise.all([unit(), unit()]);
  for (const { ids, made } of results) assert.deepEqual(ids, made);
});
