import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fetchPage } from './pagination.js';

const ids = Array.from({ length: 5 }, (_, i) => `0190a000-0000-7000-8000-00000000000${5 - i}`);
/** A list of `ids` (newest first) behind `url` with path parameters `params`. */
const list =
  (url: string, params: Record<string, string>, caller = 'viewer') =>
  (query: { limit?: number; cursor?: string }) =>
    fetchPage(
      { query, params, routeOptions: { url }, user: { sub: caller } },
      ({ idBefore, take }) =>
        Promise.resolve(
          ids
            .filter((id) => !idBefore.id || id < idBefore.id.lt)
            .slice(0, take)
            .map((id) => ({ id })),
        ),
      (row) => row.id,
    );

test('a cursor should page on from where the last page ended, and fit the query schema', async () => {
  const followers = list('/users/:userId/followers', { userId: 'a' });
  const first = await followers({ limit: 2 });
  assert.deepEqual(first.items, ids.slice(0, 2));
  assert.ok(first.nextCursor && first.nextCursor.length <= 64 && /^[A-Za-z0-9_-]+$/.test(first.nextCursor));
  const second = await followers({ limit: 2, cursor: first.nextCursor });
  assert.deepEqual(second.items, ids.slice(2, 4));
  const last = await followers({ limit: 2, cursor: second.nextCursor ?? undefined });
  assert.deepEqual([last.items, last.nextCursor], [ids.slice(4), null]);
});

test('a cursor should be refused with CURSOR_INVALID on another list than the one it came from', async () => {
  const cursor = (await list('/users/:userId/followers', { userId: 'a' })({ limit: 2 })).nextCursor ?? '';
  const refused = { code: 'CURSOR_INVALID', status: 400, field: 'query.cursor' };
  await assert.rejects(list('/users/:userId/followers', { userId: 'b' })({ cursor }), refused);
  await assert.rejects(list('/users/:userId/following', { userId: 'a' })({ cursor }), refused);
  // `/me/...` lists have no path parameter: the caller names them (another user's is refused).
  const mine = (await list('/me/feed', {}, 'u')({ limit: 2 })).nextCursor ?? '';
  assert.equal((await list('/me/feed', {}, 'u')({ cursor: mine })).items.length, 3);
  await assert.rejects(list('/me/feed', {}, 'v')({ cursor: mine }), refused);
  // Any character changed, anywhere (the list's part or the position's), is refused.
  const altered = Array.from(
    { length: cursor.length },
    (_, i) => cursor.slice(0, i) + (cursor[i] === 'A' ? 'B' : 'A') + cursor.slice(i + 1),
  );
  for (const bad of [
    'bm9wZQ',
    Buffer.from(ids[1] ?? '').toString('base64url'),
    `${cursor}x`,
    cursor.slice(1),
    ...altered,
  ]) {
    await assert.rejects(list('/users/:userId/followers', { userId: 'a' })({ cursor: bad }), refused, bad);
  }
});
