import { test } from 'node:test';
import assert from 'node:assert/strict';
import { postServiceTestApp } from './testing.js';

const svc = postServiceTestApp();

interface PostBody {
  id: string;
  authorId: string;
  body: string;
  likeCount: number;
  commentCount: number;
  updatedAt: string | null;
}
interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
type Json = Record<string, unknown>;

const call = (method: string, url: string, user: string | undefined, payload?: Json, key?: string | null) =>
  svc.bed.call(svc.app, method, url, user, payload, key);

const newPost = async (author: string, body = 'hello') =>
  (await call('POST', '/posts', author, { body })).json<PostBody>();
const eventsOf = async (type: string) => (await svc.bed.events()).filter((e) => e.type === type);

test('POST /posts should create the post and write post.created to the outbox in the same transaction', async () => {
  const res = await call('POST', '/posts', 'alice', { body: 'first @bob' });
  assert.equal(res.status, 201);
  const post = res.json<PostBody>();
  assert.deepEqual([post.authorId, post.body, post.likeCount, post.commentCount], ['alice', 'first @bob', 0, 0]);
  const [event] = (await eventsOf('post.created')).filter((e) => e.subject === post.id);
  assert.deepEqual(event?.data, {
    postId: post.id,
    authorId: 'alice',
    body: 'first @bob',
    createdAt: (event?.data as { createdAt: string }).createdAt,
  });
  assert.equal((await call('GET', `/posts/${post.id}`, 'bob')).json<PostBody>().body, 'first @bob');
});

test('posts sent at once should share statements, each stored once with its own post.created', async () => {
  const batched = () => svc.bed.batchedItems('posts.insert');
  const before = await batched();
  const authors = Array.from({ length: 30 }, (_, i) => `batch${i % 3}`);
  const answers = await Promise.all(
    authors.map((author, i) => call('POST', '/posts', author, { body: `p${i}` }, null)),
  );
  assert.deepEqual(
    answers.map((a) => a.status),
    authors.map(() => 201),
  );
  assert.equal((await batched()) - before, authors.length);
  const posts = answers.map((a) => a.json<PostBody>());
  const events = (await eventsOf('post.created')).filter((e) =>
    authors.includes((e.data as { authorId: string }).authorId),
  );
  assert.deepEqual(events.map((e) => (e.data as { postId: string }).postId).sort(), posts.map((p) => p.id).sort());
  for (const post of posts) {
    assert.equal((await call('GET', `/posts/${post.id}`, 'bob')).json<PostBody>().body, post.body);
  }
});

test('every route should answer 401 with a code for a missing, forged, expired or non-access token', async () => {
  const post = await newPost('alice');
  await svc.bed.assertTokensRequired(svc.app, [
    ['POST', '/posts'],
    ['GET', `/posts/${post.id}`],
    ['PATCH', `/posts/${post.id}`],
    ['DELETE', `/posts/${post.id}`],
    ['GET', '/users/alice/posts'],
    ['POST', `/posts/${post.id}/likes`],
    ['DELETE', `/posts/${post.id}/likes`],
    ['POST', `/posts/${post.id}/comments`],
    ['GET', `/posts/${post.id}/comments`],
    ['DELETE', `/posts/${post.id}/comments/${post.id}`],
  ]);
  assert.equal((await eventsOf('post.updated')).length, 0);
});

test('invalid input should answer 400 VALIDATION_FAILED naming the field, and change nothing', async () => {
  const post = await newPost('alice');
  const before = (await svc.bed.events()).length;
  const cases: [string, string, Json | undefined, string][] = [
    ['POST', '/posts', {}, 'body.body'],
    ['POST', '/posts', { body: '' }, 'body.body'],
    ['POST', '/posts', { body: 'x'.repeat(10_001) }, 'body.body'],
    // Lengths count UTF-16 code units, as the event catalog does: an emoji is two (Ajv counted
    // code points, so 5,001 emoji passed and the event was refused: 400 EVENT_INVALID).
    ['POST', '/posts', { body: '😀'.repeat(5_001) }, 'body.body'],
    ['PATCH', `/posts/${post.id}`, { body: '😀'.repeat(5_001) }, 'body.body'],
    ['POST', `/posts/${post.id}/comments`, { body: '😀'.repeat(5_001) }, 'body.body'],
    ['POST', '/posts', { body: 'ok', extra: 1 }, 'body'],
    ['POST', '/posts', { body: { text: 'x' } }, 'body.body'],
    ['GET', '/posts/not-a-uuid', undefined, 'params.postId'],
    ['PATCH', `/posts/${post.id}`, { body: '' }, 'body.body'],
    ['GET', '/users/bad%20id/posts', undefined, 'params.userId'],
    ['GET', `/users/${'u'.repeat(129)}/posts`, undefined, 'params.userId'],
    ['GET', '/users/alice/posts?limit=0', undefined, 'query.limit'],
    ['GET', '/users/alice/posts?limit=101', undefined, 'query.limit'],
    ['GET', '/users/alice/posts?limit=abc', undefined, 'query.limit'],
    // Only decimal digits are a number in a URL (Ajv alone would read these as 16, 10, 5 and 5).
    ['GET', '/users/alice/posts?limit=0x10', undefined, 'query.limit'],
    ['GET', '/users/alice/posts?limit=1e1', undefined, 'query.limit'],
    ['GET', '/users/alice/posts?limit=%205', undefined, 'query.limit'],
    ['GET', '/users/alice/posts?limit=5.', undefined, 'query.limit'],
    ['GET', '/users/alice/posts?limit=5&limit=0x6', undefined, 'query.limit'],
    ['GET', '/users/alice/posts?cursor=bm9wZQ', undefined, 'query.cursor'],
    ['GET', '/users/alice/posts?sort=asc', undefined, 'query'],
    ['POST', `/posts/${post.id}/comments`, { body: 1 }, 'body.body'],
    ['DELETE', `/posts/${post.id}/comments/123`, undefined, 'params.commentId'],
    // An empty id is a malformed one (the contract holds it to the route's own answers).
    ['GET', '/posts/', undefined, 'params.postId'],
    ['GET', '/posts//comments', undefined, 'params.postId'],
    ['POST', '/posts//likes', undefined, 'params.postId'],
    ['GET', '/users//posts', undefined, 'params.userId'],
  ];
  for (const [method, url, payload, field] of cases) {
    const res = await call(method, url, 'alice', payload);
    assert.equal(res.status, 400, `${method} ${url}`);
    assert.deepEqual(
      [res.json().code, res.json().field],
      [url.includes('cursor') ? 'CURSOR_INVALID' : 'VALIDATION_FAILED', field],
      `${method} ${url}`,
    );
  }
  // The longest text in emoji is taken whole.
  const emoji = await call('POST', '/posts', 'alice', { body: '😀'.repeat(5_000) });
  assert.equal(emoji.status, 201);
  assert.equal(emoji.json<PostBody>().body, '😀'.repeat(5_000));
  // The longest valid user id (128 characters) is a valid path parameter too.
  assert.equal((await call('GET', `/users/${'u'.repeat(128)}/posts`, 'alice')).status, 200);
  const badKey = await call('POST', '/posts', 'alice', { body: 'x' }, 'has space');
  assert.deepEqual([badKey.status, badKey.json().field], [400, 'headers.idempotency-key']);
  assert.equal((await svc.bed.events()).length, before + 1);
});

test('text with a NUL or a lone surrogate should answer 400 VALIDATION_FAILED on every route that stores it, not 500', async () => {
  const post = await newPost('alice');
  const before = (await svc.bed.events()).length;
  // PostgreSQL's text and jsonb hold neither: the insert failed and the route answered 500.
  for (const body of ['a\u0000b', '\ud800', 'x\udfffy']) {
    for (const [method, url, key] of [
      ['POST', '/posts', null], // the batched insert
      ['POST', '/posts', 'k-text'], // the transaction of a request with an Idempotency-Key
      ['PATCH', `/posts/${post.id}`, null],
      ['POST', `/posts/${post.id}/comments`, null],
    ] as const) {
      const res = await call(method, url, 'alice', { body }, key);
      assert.deepEqual(
        [res.status, res.json().code, res.json().field],
        [400, 'VALIDATION_FAILED', 'body.body'],
        `${method} ${url} ${JSON.stringify(body)}`,
      );
    }
  }
  assert.equal((await svc.bed.events()).length, before);
  // A character outside the BMP is a surrogate pair, not a lone surrogate.
  assert.equal((await newPost('alice', 'party 🎉')).body, 'party 🎉');
});

test('only the author should edit or delete a post; others get 403 and nothing changes', async () => {
  const post = await newPost('alice', 'original');
  const edit = await call('PATCH', `/posts/${post.id}`, 'mallory', { body: 'hacked' });
  assert.deepEqual([edit.status, edit.json().code], [403, 'POST_FORBIDDEN']);
  const del = await call('DELETE', `/posts/${post.id}`, 'mallory');
  assert.deepEqual([del.status, del.json().code], [403, 'POST_FORBIDDEN']);
  assert.equal((await call('GET', `/posts/${post.id}`, 'bob')).json<PostBody>().body, 'original');

  const edited = await call('PATCH', `/posts/${post.id}`, 'alice', { body: 'edited' });
  assert.equal(edited.status, 200);
  assert.equal(edited.json<PostBody>().body, 'edited');
  assert.ok(edited.json<PostBody>().updatedAt);
  assert.equal((await eventsOf('post.updated')).filter((e) => e.subject === post.id).length, 1);

  assert.equal((await call('DELETE', `/posts/${post.id}`, 'alice')).status, 204);
  const gone = await call('GET', `/posts/${post.id}`, 'alice');
  assert.deepEqual([gone.status, gone.json().code], [404, 'POST_NOT_FOUND']);
  assert.equal((await call('DELETE', `/posts/${post.id}`, 'alice')).status, 404);
  assert.equal((await call('PATCH', `/posts/${post.id}`, 'alice', { body: 'x' })).status, 404);
  assert.equal((await eventsOf('post.deleted')).filter((e) => e.subject === post.id).length, 1);
});

test('likes should be idempotent per user, keep the counter exact and emit one event per change', async () => {
  const post = await newPost('alice');
  const like = (user: string) => call('POST', `/posts/${post.id}/likes`, user);
  const unlike = (user: string) => call('DELETE', `/posts/${post.id}/likes`, user);
  assert.deepEqual((await like('bob')).json(), { postId: post.id, liked: true, likeCount: 1 });
  assert.deepEqual((await like('bob')).json(), { postId: post.id, liked: true, likeCount: 1 });
  await Promise.all(['c1', 'c2', 'c3', 'c4', 'c1', 'c2'].map(like));
  assert.equal((await call('GET', `/posts/${post.id}`, 'bob')).json<PostBody>().likeCount, 5);
  assert.deepEqual((await unlike('bob')).json(), { postId: post.id, liked: false, likeCount: 4 });
  assert.deepEqual((await unlike('bob')).json(), { postId: post.id, liked: false, likeCount: 4 });
  const liked = (await eventsOf('post.liked')).filter((e) => e.subject === post.id);
  const unliked = (await eventsOf('post.unliked')).filter((e) => e.subject === post.id);
  assert.equal(liked.length, 5);
  assert.equal(unliked.length, 1);
  assert.deepEqual(
    liked.map((e) => (e.data as { likeCount: number }).likeCount).sort(),
    [1, 2, 3, 4, 5],
    'each like event carries the count after it',
  );
  assert.equal(
    (await call('POST', `/posts/${'0'.repeat(8)}-0000-7000-8000-${'0'.repeat(12)}/likes`, 'bob')).status,
    404,
  );
});

test('comments should be created, listed and deleted by their author or the post author only', async () => {
  const post = await newPost('alice');
  const c1 = (await call('POST', `/posts/${post.id}/comments`, 'bob', { body: 'nice' })).json<{ id: string }>();
  const c2 = (await call('POST', `/posts/${post.id}/comments`, 'carol', { body: 'great' })).json<{ id: string }>();
  assert.equal((await call('GET', `/posts/${post.id}`, 'bob')).json<PostBody>().commentCount, 2);
  const listed = (await call('GET', `/posts/${post.id}/comments`, 'dave')).json<Page<{ id: string }>>();
  assert.deepEqual(
    listed.items.map((c) => c.id),
    [c2.id, c1.id],
  );

  const stranger = await call('DELETE', `/posts/${post.id}/comments/${c1.id}`, 'mallory');
  assert.deepEqual([stranger.status, stranger.json().code], [403, 'COMMENT_FORBIDDEN']);
  assert.equal((await call('DELETE', `/posts/${post.id}/comments/${c1.id}`, 'bob')).status, 204);
  assert.equal((await call('DELETE', `/posts/${post.id}/comments/${c2.id}`, 'alice')).status, 204);
  assert.equal((await call('DELETE', `/posts/${post.id}/comments/${c2.id}`, 'alice')).status, 404);
  assert.equal((await call('GET', `/posts/${post.id}`, 'bob')).json<PostBody>().commentCount, 0);
  const created = (await eventsOf('comment.created')).filter((e) => e.subject === post.id);
  assert.deepEqual(
    created.map((e) => (e.data as { postAuthorId: string; authorId: string }).authorId),
    ['bob', 'carol'],
  );
  const deleted = (await eventsOf('comment.deleted')).filter((e) => e.subject === post.id);
  assert.deepEqual(
    deleted.map((e) => (e.data as { deletedBy: string }).deletedBy),
    ['bob', 'alice'],
  );
});

test('a retried POST with the same Idempotency-Key should get the same answer and write no second event', async () => {
  const first = await call('POST', '/posts', 'erin', { body: 'once' }, 'key-1');
  const retry = await call('POST', '/posts', 'erin', { body: 'once' }, 'key-1');
  assert.equal(retry.status, 201);
  assert.deepEqual(retry.json(), first.json());
  assert.equal(retry.headers['idempotent-replayed'], 'true');
  const other = await call('POST', '/posts', 'erin', { body: 'different' }, 'key-1');
  assert.deepEqual([other.status, other.json().code], [422, 'IDEMPOTENCY_KEY_REUSED']);
  // Keys are per user: another user's identical key is a different request.
  assert.equal((await call('POST', '/posts', 'frank', { body: 'once' }, 'key-1')).status, 201);

  const racing = await Promise.all(
    Array.from({ length: 6 }, () => call('POST', '/posts', 'erin', { body: 'race' }, 'key-2')),
  );
  assert.deepEqual(
    racing.map((r) => r.status),
    Array(6).fill(201),
  );
  assert.equal(new Set(racing.map((r) => r.json<PostBody>().id)).size, 1);
  const erinPosts = (await call('GET', '/users/erin/posts', 'erin')).json<Page<PostBody>>().items;
  assert.deepEqual(erinPosts.map((p) => p.body).sort(), ['once', 'race']);
  assert.equal((await eventsOf('post.created')).filter((e) => (e.data as Json).authorId === 'erin').length, 2);
});

test('a failed POST should not consume its Idempotency-Key', async () => {
  const missing = `${'0'.repeat(8)}-0000-7000-8000-${'0'.repeat(12)}`;
  assert.equal((await call('POST', `/posts/${missing}/comments`, 'gina', { body: 'x' }, 'key-f')).status, 404);
  const post = await newPost('gina');
  assert.equal((await call('POST', `/posts/${post.id}/comments`, 'gina', { body: 'x' }, 'key-g')).status, 201);
});

test('listing posts by creator should page newest first with exact boundaries', async () => {
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await newPost('pager', `p${i}`)).id);
  const newestFirst = [...ids].reverse();
  const seen: string[] = [];
  let cursor: string | null = null;
  const sizes: number[] = [];
  do {
    const page: Page<PostBody> = (
      await call('GET', `/users/pager/posts?limit=2${cursor ? `&cursor=${cursor}` : ''}`, 'viewer')
    ).json<Page<PostBody>>();
    sizes.push(page.items.length);
    seen.push(...page.items.map((p) => p.id));
    cursor = page.nextCursor;
  } while (cursor !== null);
  assert.deepEqual(sizes, [2, 2, 1]);
  assert.deepEqual(seen, newestFirst);
  const exact = (await call('GET', '/users/pager/posts?limit=5', 'viewer')).json<Page<PostBody>>();
  assert.deepEqual([exact.items.length, exact.nextCursor], [5, null]);
  const empty = (await call('GET', '/users/nobody/posts', 'viewer')).json<Page<PostBody>>();
  assert.deepEqual(empty, { items: [], nextCursor: null });
});

test('the OpenAPI document should describe every route with its security, errors and headers', async () => {
  await svc.bed.assertOpenApiConventions(svc.app, {
    deletesWithBody: ['DELETE /posts/{postId}/likes', 'DELETE /me/following/{userId}'],
  });
  assert.equal((await svc.app.inject({ method: 'GET', url: '/docs' })).statusCode < 400, true);
});
