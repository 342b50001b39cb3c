import { test } from 'node:test';
import assert from 'node:assert/strict';
import { postServiceTestApp } from './testing.js';

const svc = postServiceTestApp();

interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
type Json = Record<string, unknown>;

const call = (method: string, url: string, user: string | undefined, payload?: Json, key?: string) =>
  svc.bed.call(svc.app, method, url, user, payload, key);
const followEvents = async (follower: string) =>
  (await svc.bed.events()).filter(
    (e) => e.type.startsWith('user.') && (e.data as { followerId: string }).followerId === follower,
  );
const counts = async (user: string) => (await call('GET', `/users/${user}`, 'viewer')).json();

test('following should be idempotent, keep both counts exact and emit one event per change', async () => {
  const follow = (who: string, whom: string, key?: string) => call('PUT', `/me/following/${whom}`, who, undefined, key);
  const first = await follow('fa', 'fb');
  assert.equal(first.status, 200);
  assert.deepEqual(first.json(), { followerId: 'fa', followeeId: 'fb', following: true });
  assert.deepEqual((await follow('fa', 'fb')).json(), { followerId: 'fa', followeeId: 'fb', following: true });
  // Following each other at once locks both count rows in one order: no deadlock, exact counts.
  await Promise.all([follow('fb', 'fa'), follow('fa', 'fc'), follow('fc', 'fa'), follow('fa', 'fc')]);
  assert.deepEqual(await counts('fa'), { id: 'fa', followerCount: 2, followingCount: 2 });
  assert.deepEqual(await counts('fb'), { id: 'fb', followerCount: 1, followingCount: 1 });
  assert.deepEqual(
    (await followEvents('fa')).map((e) => [e.type, (e.data as Json).followeeId]),
    [
      ['user.followed', 'fb'],
      ['user.followed', 'fc'],
    ],
  );

  const unfollow = await call('DELETE', '/me/following/fb', 'fa');
  assert.deepEqual(unfollow.json(), { followerId: 'fa', followeeId: 'fb', following: false });
  assert.deepEqual((await call('DELETE', '/me/following/fb', 'fa')).json<Json>().following, false);
  assert.deepEqual(await counts('fa'), { id: 'fa', followerCount: 2, followingCount: 1 });
  assert.deepEqual(await counts('fb'), { id: 'fb', followerCount: 0, followingCount: 1 });
  assert.deepEqual(
    (await followEvents('fa')).map((e) => e.type),
    ['user.followed', 'user.followed', 'user.unfollowed'],
  );
  // A retry with the same Idempotency-Key replays the answer and writes nothing.
  const keyed = await follow('fk', 'fb', 'k-1');
  const replay = await follow('fk', 'fb', 'k-1');
  assert.deepEqual([replay.status, replay.json(), replay.headers['idempotent-replayed']], [200, keyed.json(), 'true']);
  assert.equal((await followEvents('fk')).length, 1);
});

test('following oneself, or a malformed id, should answer 400 with its code and change nothing', async () => {
  const self = await call('PUT', '/me/following/selfie', 'selfie');
  assert.deepEqual([self.status, self.json().code, self.json().field], [400, 'FOLLOW_SELF', 'params.userId']);
  for (const [method, url] of [
    ['PUT', '/me/following/bad%20id'],
    ['DELETE', '/me/following/bad%20id'],
    ['GET', '/users/bad%20id'],
    ['GET', '/users/bad%20id/followers'],
    ['GET', '/users/bad%20id/following'],
    ['PUT', '/me/following/'],
    ['DELETE', '/me/following/'],
    ['GET', '/users/'],
    ['GET', '/users//followers'],
  ] as const) {
    const res = await call(method, url, 'selfie');
    assert.deepEqual([res.status, res.json().code, res.json().field], [400, 'VALIDATION_FAILED', 'params.userId'], url);
  }
  // A route that takes no query refuses one, as the others refuse a parameter they do not know.
  for (const url of ['/me/following/ids?cursor=x', '/users/selfie?limit=1', '/me/following/x1?force=1']) {
    const res = await call(url.includes('force') ? 'PUT' : 'GET', url, 'selfie');
    assert.deepEqual([res.status, res.json().code, res.json().field], [400, 'VALIDATION_FAILED', 'query'], url);
  }
  const badCursor = await call('GET', '/users/selfie/followers?cursor=bm9wZQ', 'selfie');
  assert.deepEqual([badCursor.status, badCursor.json().code], [400, 'CURSOR_INVALID']);
  assert.deepEqual(await counts('selfie'), { id: 'selfie', followerCount: 0, followingCount: 0 });
  assert.equal((await followEvents('selfie')).length, 0);
});

test('every follow route should answer 401 with a code without a valid access token', async () => {
  await svc.bed.assertTokensRequired(svc.app, [
    ['PUT', '/me/following/x1'],
    ['DELETE', '/me/following/x1'],
    ['GET', '/users/x1'],
    ['GET', '/users/x1/followers'],
    ['GET', '/users/x1/following'],
    ['GET', '/me/following/ids'],
    ['GET', '/me/feed'],
  ]);
});

test('followers and following should page newest first, and the ids route should list every followee', async () => {
  for (const fan of ['p1', 'p2', 'p3']) await call('PUT', '/me/following/star', fan);
  for (const whom of ['s1', 's2', 's3']) await call('PUT', `/me/following/${whom}`, 'p1');
  const followers: string[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<{ userId: string; followedAt: string }> = (
      await call('GET', `/users/star/followers?limit=2${cursor ? `&cursor=${cursor}` : ''}`, 'viewer')
    ).json();
    followers.push(...page.items.map((i) => i.userId));
    cursor = page.nextCursor;
  } while (cursor !== null);
  assert.deepEqual(followers, ['p3', 'p2', 'p1']);
  const following = (await call('GET', '/users/p1/following', 'viewer')).json<Page<{ userId: string }>>();
  assert.deepEqual(
    following.items.map((i) => i.userId),
    ['s3', 's2', 's1', 'star'],
  );
  const ids = (await call('GET', '/me/following/ids', 'p1')).json<{ ids: string[] }>().ids;
  assert.deepEqual(ids.sort(), ['s1', 's2', 's3', 'star']);
});

test('GET /me/feed should page the posts of followees and the caller, newest first, and drop unfollowed ones', async () => {
  const post = async (author: string, body: string) =>
    (await call('POST', '/posts', author, { body })).json<{ id: string }>().id;
  await call('PUT', '/me/following/fd-b', 'fd-a');
  await call('PUT', '/me/following/fd-c', 'fd-a');
  const ids = [
    await post('fd-b', 'b1'),
    await post('fd-x', 'not followed'),
    await post('fd-c', 'c1'),
    await post('fd-a', 'own'),
    await post('fd-b', 'b2'),
  ];
  const expected = [ids[4], ids[3], ids[2], ids[0]];
  const seen: string[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<{ id: string }> = (
      await call('GET', `/me/feed?limit=3${cursor ? `&cursor=${cursor}` : ''}`, 'fd-a')
    ).json();
    seen.push(...page.items.map((p) => p.id));
    cursor = page.nextCursor;
  } while (cursor !== null);
  assert.deepEqual(seen, expected);
  await call('DELETE', '/me/following/fd-c', 'fd-a');
  const after = (await call('GET', '/me/feed', 'fd-a')).json<Page<{ id: string }>>();
  assert.deepEqual(
    after.items.map((p) => p.id),
    [ids[4], ids[3], ids[0]],
  );
});

const limited = postServiceTestApp({ max: 3, windowMs: 60_000 });

test("a user at the API's rate limit should still have their followees loaded, within a budget of its own", async () => {
  const get = (url: string) => limited.bed.call(limited.app, 'GET', url, 'busy');
  for (let i = 0; i < 3; i++) assert.equal((await get('/users/busy')).status, 200);
  assert.equal((await get('/users/busy')).status, 429);
  // A gateway node loading busy's feed must not be refused because busy used the API.
  for (let i = 0; i < 3; i++) {
    const ids = await get('/me/following/ids');
    assert.deepEqual([ids.status, ids.json()], [200, { ids: [] }]);
  }
  const over = await get('/me/following/ids');
  assert.deepEqual([over.status, over.json().code], [429, 'RATE_LIMITED']);
});
