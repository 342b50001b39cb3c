import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RippleError } from '@ripple/errors';
import { createEvent } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import { LeasedDirectory, MemoryHistory, MemoryLeasedSets, SequentialRouteLog } from '@ripple/registry';
import type { StreamPosition } from '@ripple/registry';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { LiveFeeds } from './feed.js';
import type { FolloweeSource } from './feed.js';
import { createFeedMetrics } from './feed-metrics.js';
import { LocalHub } from './hub.js';
import type { ChannelFrame } from './hub.js';
import { eventFrame } from './protocol.js';
import { Router } from './router.js';
import type { FramePosition } from './sink.js';
import { Subscriptions } from './subscriptions.js';
import { unitMetrics } from './single-node.js';

const at = '2026-11-29T12:00:00.000Z';
const settle = () => new Promise((r) => setImmediate(r));

/** One node: hub, memory history and directory, a router without other nodes, and its live feeds. */
function node(following: Record<string, string[]>, source?: FolloweeSource) {
  const history = new MemoryHistory(100);
  const hub = new LocalHub({ history, fillLimit: 100 });
  const directory = new LeasedDirectory(new MemoryLeasedSets(() => 1_000_000), 't:', 'n1', 15_000);
  const registry = createMetricsRegistry('feed-test');
  const reads = { nodeId: 'n1', hub, history, directory, historyLimit: 100 };
  const credentials: string[] = [];
  const feeds: LiveFeeds = new LiveFeeds({
    subscriptions: reads,
    source: source ?? {
      following: (userId, credential) => {
        credentials.push(credential);
        return Promise.resolve(following[userId] ?? []);
      },
    },
    metrics: createFeedMetrics(registry, () => feeds.creatorCount),
    logger: createLogger('feed-test', 'silent'),
  });
  const bus = {
    start: () => Promise.resolve(),
    stop: () => Promise.resolve(),
    send: () => Promise.resolve(),
    broadcast: () => Promise.resolve(),
  };
  const metrics = unitMetrics(registry);
  const router = new Router({ ...reads, routes: new SequentialRouteLog(history, directory), bus, metrics });
  /** A connection's channels, recording what reaches it: `<channel>#<offset> <event summary>`, `gap <channel>`. */
  const connection = (token = 'token') => {
    const got: string[] = [];
    const positions: StreamPosition[] = [];
    const subs = new Subscriptions(
      { ...reads, derived: feeds },
      {
        event: (f) => {
          const { event } = JSON.parse(f.frame) as { event: AnyEvent };
          const data = event.data as { authorId?: string; body?: string; followeeId?: string };
          got.push(`${f.channel}#${f.offset} ${event.type} ${data.body ?? data.followeeId ?? ''}`);
        },
        gap: (channel, position) => {
          positions.push(position);
          got.push(`gap ${channel}`);
        },
        credential: () => token,
      },
    );
    return { subs, got, positions };
  };
  const post = (authorId: string, body: string, postId = body) =>
    router.route([createEvent('post.created', { source: 't', data: { postId, authorId, body, createdAt: at } })]);
  const followChange = (type: 'user.followed' | 'user.unfollowed', followerId: string, followeeId: string) =>
    router.route([createEvent(type, { source: 't', data: { followerId, followeeId, at } })]);
  return { hub, history, reads, feeds, router, connection, post, followChange, credentials };
}

const feedOnly = (got: string[]) => got.filter((g) => g.startsWith('feed:'));

test('a post made right after a follow, but routed before the follow event, should still reach the feed, once and in order', async () => {
  const n = node({ a: [], z: ['d'] });
  const conn = n.connection();
  await conn.subs.add('feed:a', undefined);
  // Another feed on the node already reads creator:d (the race differs: the frames reach the node).
  const other = n.connection();
  await other.subs.add('feed:z', undefined);
  const t = (ms: number) => new Date(Date.parse(at) + ms);
  const route = (event: AnyEvent) => n.router.route([event]);
  const postAt = (body: string, ms: number) =>
    createEvent('post.created', {
      source: 't',
      data: { postId: body, authorId: 'd', body, createdAt: at },
      time: t(ms),
    });
  await route(postAt('d-before', 0));
  await route(postAt('d-same-ms', 10)); // as old as the follow: it may have been made just before
  const follow = createEvent('user.followed', {
    source: 't',
    data: { followerId: 'a', followeeId: 'd', at },
    time: t(10),
  });
  // Posts made after the follow committed, on another partition: routed before the follow event.
  await route(postAt('d-after-1', 20));
  await route(postAt('d-after-2', 30));
  const applying = route(follow);
  await route(postAt('d-live', 40)); // while the follow is being applied
  await applying;
  await settle();
  await route(postAt('d-later', 50));
  await settle();
  assert.deepEqual(feedOnly(conn.got), [
    'feed:a#1 post.created d-after-1',
    'feed:a#2 post.created d-after-2',
    'feed:a#3 post.created d-live',
    'feed:a#4 post.created d-later',
  ]);
  // The same with no other reader of creator:d on the node.
  const m = node({ b: [] });
  const solo = m.connection();
  await solo.subs.add('feed:b', undefined);
  await m.router.route([postAt('d-early', 0)]);
  await m.router.route([postAt('d-soon', 20)]);
  await m.router.route([
    createEvent('user.followed', { source: 't', data: { followerId: 'b', followeeId: 'd', at }, time: t(10) }),
  ]);
  await settle();
  assert.deepEqual(feedOnly(solo.got), ['feed:b#1 post.created d-soon']);
});

test('a creator frame that reaches the node after a follow caught up past it should not reach the feed twice', async () => {
  const n = node({ a: [], z: ['d'] });
  const conn = n.connection();
  await conn.subs.add('feed:a', undefined);
  // Another feed on the node already reads creator:d, so d's frames reach the node's feeds.
  const other = n.connection();
  await other.subs.add('feed:z', undefined);
  // Another node routed d's post: in history already, its frame still on the way to this node.
  const remote = createEvent('post.created', {
    source: 't',
    data: { postId: 'd-remote', authorId: 'd', body: 'd-remote', createdAt: at },
    time: new Date(Date.parse(at) + 20),
  });
  const payload = JSON.stringify(remote);
  const { offset, epoch } = await n.history.append('creator:d', payload);
  await n.router.route([
    createEvent('user.followed', { source: 't', data: { followerId: 'a', followeeId: 'd', at }, time: new Date(at) }),
  ]);
  await settle();
  // The other node's message arrives now, after the catch-up handed the post out.
  await n.router.receive({
    frames: [
      {
        channel: 'creator:d',
        offset,
        epoch,
        time: remote.time,
        frame: eventFrame('creator:d', offset, epoch, payload),
      },
    ],
  });
  await n.post('d', 'd-next');
  await settle();
  assert.deepEqual(feedOnly(conn.got), ['feed:a#1 post.created d-remote', 'feed:a#2 post.created d-next']);
});

test("a feed should carry its user's and their followees' posts, in order, each once, labelled with its own offsets", async () => {
  const n = node({ a: ['b', 'c'] });
  const conn = n.connection('a-token');
  const joined = await conn.subs.add('feed:a', undefined);
  assert.equal(joined.position.offset, '0');
  assert.equal(joined.recovered, false);
  assert.deepEqual(n.credentials, ['a-token'], 'the followees are loaded with the connection own token');
  // Another connection reading creator:b directly does not make the feed see b's posts twice.
  await conn.subs.add('creator:b', undefined);
  await n.post('b', 'b1');
  await n.post('x', 'x1');
  await n.post('c', 'c1');
  await n.post('a', 'a1');
  await n.post('b', 'b2');
  assert.deepEqual(feedOnly(conn.got), [
    'feed:a#1 post.created b1',
    'feed:a#2 post.created c1',
    'feed:a#3 post.created a1',
    'feed:a#4 post.created b2',
  ]);
  assert.deepEqual(
    conn.got.filter((g) => g.startsWith('creator:')),
    ['creator:b#1 post.created b1', 'creator:b#2 post.created b2'],
  );
});

test('a follow while connected should start deliveries and an unfollow stop them and release the creator channel', async () => {
  const n = node({ a: [] });
  const conn = n.connection();
  await conn.subs.add('feed:a', undefined);
  await n.post('c', 'before');
  await n.followChange('user.followed', 'a', 'c');
  await settle();
  assert.ok(n.hub.channelNames().includes('creator:c'));
  await n.post('c', 'during');
  await n.followChange('user.unfollowed', 'a', 'c');
  await settle();
  await n.post('c', 'after');
  assert.deepEqual(feedOnly(conn.got), ['feed:a#1 post.created during']);
  assert.ok(!n.hub.channelNames().includes('creator:c'), 'nobody here follows c any more');
  // Another user's follows do not change a's feed; a's own posts stay whatever the events say.
  await n.followChange('user.followed', 'z', 'd');
  await n.followChange('user.unfollowed', 'a', 'a');
  await settle();
  await n.post('d', 'd1');
  await n.post('a', 'own');
  assert.deepEqual(feedOnly(conn.got), ['feed:a#1 post.created during', 'feed:a#2 post.created own']);
});

test('a node should read a creator once for all its feeds, and stop when the last feed leaves', async () => {
  const n = node({ a: ['star'], b: ['star'] });
  const [ca, cb, ca2] = [n.connection(), n.connection(), n.connection()];
  await ca.subs.add('feed:a', undefined);
  await cb.subs.add('feed:b', undefined);
  await ca2.subs.add('feed:a', undefined);
  assert.equal(n.feeds.creatorCount, 3, 'star, a and b');
  assert.equal(n.hub.channelNames().filter((c) => c === 'creator:star').length, 1);
  await n.post('star', 's1');
  for (const conn of [ca, cb, ca2]) assert.equal(feedOnly(conn.got).length, 1);
  await ca.subs.close();
  await cb.subs.remove('feed:b');
  assert.ok(n.hub.channelNames().includes('creator:star'), 'the second connection of a still reads it');
  await ca2.subs.close();
  assert.deepEqual(n.hub.channelNames(), [], 'nothing read for feeds once no feed is left');
  assert.equal(n.feeds.creatorCount, 0);
});

test('a follow change made while the followee list loads should be applied on top of it', async () => {
  let release: (ids: string[]) => void = () => undefined;
  const n = node({}, { following: () => new Promise((resolve) => (release = resolve)) });
  const conn = n.connection();
  await conn.subs.add('user:a', undefined);
  const joining = conn.subs.add('feed:a', undefined);
  await settle();
  // The list was read before these changes committed: it still has c and lacks d.
  await n.followChange('user.unfollowed', 'a', 'c');
  await n.followChange('user.followed', 'a', 'd');
  release(['c']);
  await joining;
  await n.post('c', 'c1');
  await n.post('d', 'd1');
  assert.deepEqual(feedOnly(conn.got), ['feed:a#1 post.created d1']);
});

test('a feed that cannot load its followees should fail the subscribe with its code and hold nothing', async () => {
  const failing: FolloweeSource = {
    following: () => Promise.reject(new RippleError('GW_FEED_UNAVAILABLE', 'post-service is away')),
  };
  const n = node({}, failing);
  const conn = n.connection();
  await assert.rejects(conn.subs.add('feed:a', undefined), { code: 'GW_FEED_UNAVAILABLE' });
  assert.equal(conn.subs.has('feed:a'), false);
  assert.deepEqual(n.hub.channelNames(), []);
});

test('a resubscribe with since should answer recovered: false, and a lost creator stream should restart the feed epoch', async () => {
  const n = node({ a: ['b'] });
  const conn = n.connection();
  const first = await conn.subs.add('feed:a', undefined);
  await n.post('b', 'b1');
  const again = n.connection();
  const resumed = await again.subs.add('feed:a', { offset: '1', epoch: first.position.epoch });
  assert.equal(resumed.recovered, false, 'feed frames have no history: refetch GET /me/feed');
  assert.ok(resumed.position.epoch > first.position.epoch, 'each feed subscription has its own, later epoch');
  // The creator channel's history is lost (Redis restarted empty): its next event starts a new
  // epoch, and every feed showing it starts over.
  n.history.forget('creator:b');
  await n.post('b', 'b2');
  assert.deepEqual(conn.got.slice(-2), ['gap feed:a', 'feed:a#1 post.created b2']);
  const restarted = conn.positions.at(-1);
  assert.equal(restarted?.offset, '0');
  assert.ok((restarted?.epoch ?? '') > first.position.epoch);
});

test("a second feed of a user on the node should take the first one's followees, follow changes included, without loading", async () => {
  let loads = 0;
  let release: (ids: string[]) => void = () => undefined;
  const n = node(
    {},
    {
      following: () => {
        loads += 1;
        return new Promise((resolve) => (release = resolve));
      },
    },
  );
  const first = n.connection();
  const second = n.connection();
  await first.subs.add('user:a', undefined);
  const joiningFirst = first.subs.add('feed:a', undefined);
  await settle();
  // Committed after the list was read: only the first feed saw it while loading.
  await n.followChange('user.followed', 'a', 'd');
  const joiningSecond = second.subs.add('feed:a', undefined);
  await settle();
  release(['c']);
  await Promise.all([joiningFirst, joiningSecond]);
  assert.equal(loads, 1);
  await n.post('c', 'c1');
  await n.post('d', 'd1');
  assert.deepEqual(feedOnly(second.got), ['feed:a#1 post.created c1', 'feed:a#2 post.created d1']);
  // A third, joining once the others are loaded, takes their list as it stands now.
  await n.followChange('user.unfollowed', 'a', 'c');
  const third = n.connection();
  await third.subs.add('feed:a', undefined);
  assert.equal(loads, 1);
  await n.post('c', 'c2');
  await n.post('d', 'd2');
  assert.deepEqual(feedOnly(third.got), ['feed:a#1 post.created d2']);
});

test('a feed should load its own list when the feed it waited for failed to load', async () => {
  let calls = 0;
  const n = node(
    {},
    {
      following: () => {
        calls += 1;
        return calls === 1
          ? Promise.reject(new RippleError('GW_FEED_UNAVAILABLE', 'post-service is away'))
          : Promise.resolve(['c']);
      },
    },
  );
  const first = n.connection();
  const second = n.connection();
  const [a, b] = await Promise.allSettled([first.subs.add('feed:a', undefined), second.subs.add('feed:a', undefined)]);
  assert.equal(a.status, 'rejected');
  assert.equal(b.status, 'fulfilled');
  assert.equal(calls, 2);
  await n.post('c', 'c1');
  assert.deepEqual(feedOnly(second.got), ['feed:a#1 post.created c1']);
});

test("a feed frame should carry its text's UTF-8 bytes, for each follower, whatever characters the event has", async () => {
  const n = node({ a: ['b'], d: ['b'] });
  const frames: ChannelFrame[] = [];
  for (const user of ['a', 'd']) {
    const subs = new Subscriptions(
      { ...n.reads, derived: n.feeds },
      { event: (f) => frames.push(f), gap: () => undefined },
    );
    await subs.add(`feed:${user}`, undefined);
  }
  await n.post('b', 'ünïcödé 🎉 post', 'p1');
  assert.deepEqual(
    frames.map((f) => f.channel),
    ['feed:a', 'feed:d'],
  );
  for (const frame of frames) {
    const bytes = (frame as FramePosition).bytes;
    assert.ok(bytes, 'a feed frame carries its bytes');
    assert.equal(bytes.toString('utf8'), frame.frame);
    const { channel, offset, event } = JSON.parse(frame.frame) as { channel: string; offset: string; event: AnyEvent };
    assert.equal(channel, frame.channel);
    assert.equal(offset, '1');
    assert.equal((event.data as { body: string }).body, 'ünïcödé 🎉 post');
  }
});
