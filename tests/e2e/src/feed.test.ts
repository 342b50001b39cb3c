import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { cleanupAll, waitFor } from '@ripple/testing';
import { TestClient, isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// The live feed on real processes (post-service, two gateway nodes, Kafka, Redis, PostgreSQL):
// follows over HTTP, feed:<user> over WebSocket, fanned out on read by the gateway nodes.
const iso = isolatedRun('feed');
const secret = jwtSecret(iso.jwtSecretText);
let postService: RunningService;
const gateways: RunningService[] = [];
const clients: TestClient[] = [];

before(async () => {
  postService = await spawnService('post-service', {
    ...iso.env,
    DATABASE_URL: iso.databaseUrl('post-service'),
    OUTBOX_POLL_INTERVAL_MS: '200',
    // The machine is shared: a busy moment must not shed the test's few requests.
    OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
  });
  for (const id of ['g1', 'g2']) {
    gateways.push(
      await spawnService('fanout-gateway', {
        ...iso.env,
        NODE_ID: `${id}-${iso.run}`,
        KAFKA_GROUP_ID: `feed.${iso.run}.gateway`,
        POST_SERVICE_URL: postService.url,
        REGISTRY_HEARTBEAT_MS: '300',
      }),
    );
  }
});

after(() =>
  cleanupAll(
    ...clients.map((c) => () => c.close()),
    () => Promise.all([postService?.stop(), ...gateways.map((g) => g.stop())]),
    () => iso.cleanup(),
  ),
);

type Frame = Record<string, unknown>;
interface Event {
  id: string;
  type: string;
  data: { authorId?: string; body?: string; followeeId?: string };
}
const eventOf = (f: Frame) => f.event as Event;

/** A WebSocket client of `user` on gateway `node`, with the arrival time of every event frame by event id. */
async function connect(user: string, node: number) {
  const token = await signAccessToken(secret, user);
  const gateway = gateways[node] ?? assert.fail(`no gateway ${node}`);
  const client = TestClient.connect(`ws://127.0.0.1:${gateway.port}/ws`, { authorization: `Bearer ${token}` });
  clients.push(client);
  const arrivals = new Map<string, number>();
  client.socket.on('message', (data: Buffer) => {
    const frame = JSON.parse(data.toString('utf8')) as Frame;
    if (frame.op === 'event' && String(frame.channel).startsWith('feed:'))
      arrivals.set(eventOf(frame).id, performance.now());
  });
  await client.frame((f) => f.op === 'welcome');
  let n = 0;
  const subscribe = async (channel: string, since?: { offset: string; epoch: string }): Promise<Frame> => {
    const id = `s${++n}`;
    client.send({ op: 'subscribe', id, channel, ...(since && { since }) });
    const answer = await client.frame((f) => f.id === id && (f.op === 'ack' || f.op === 'error'));
    assert.equal(answer.op, 'ack', JSON.stringify(answer));
    return answer;
  };
  return { client, arrivals, subscribe };
}

async function api(method: string, path: string, user: string, body?: unknown) {
  const res = await fetch(`${postService.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${await signAccessToken(secret, user)}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  assert.ok(res.status < 300, `${method} ${path}: ${res.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** Creates a post and resolves with its id and when the request was sent. */
async function post(author: string, body: string) {
  const sentAt = performance.now();
  const created = await api('POST', '/posts', author, { body });
  return { id: created.id as string, sentAt, body };
}

/** Whether `f` is an event frame of `channel` whose post body is `body`. */
const carries = (f: Frame, channel: string, body: string) =>
  f.op === 'event' && f.channel === channel && eventOf(f).data.body === body;
const feedEvents = (client: TestClient, channel: string) =>
  client.frames.filter((f) => f.op === 'event' && f.channel === channel);
const bodies = (frames: Frame[], author?: string) =>
  frames
    .map(eventOf)
    .filter((e) => author === undefined || e.data.authorId === author)
    .map((e) => e.data.body);

test("a follower's feed should get each followed creator's posts once, in the creator's order, and follow and unfollow live", async (t) => {
  const [a, b, c, d] = ['fa', 'fb', 'fc', 'fd'].map((u) => `${u}-${iso.run}`) as [string, string, string, string];
  await api('PUT', `/me/following/${b}`, a);
  await api('PUT', `/me/following/${c}`, a);
  assert.deepEqual(await api('GET', `/users/${a}`, b), { id: a, followerCount: 0, followingCount: 2 });

  // A on node 1; a second follower of b on node 2, so the post crosses nodes too.
  const fan = `ff-${iso.run}`;
  await api('PUT', `/me/following/${b}`, fan);
  const reader = await connect(a, 0);
  const other = await connect(fan, 1);
  const ack = await reader.subscribe(`feed:${a}`);
  assert.deepEqual([ack.offset, typeof ack.epoch], ['0', 'string']);
  await other.subscribe(`feed:${fan}`);
  // The same socket reads the creators' own channels: the order the feed must keep, and the
  // proof that an unfollowed creator's event reached the node (then it is never coming).
  await reader.subscribe(`creator:${b}`);
  await reader.subscribe(`creator:${c}`);

  const posts = [await post(b, 'b1'), await post(c, 'c1'), await post(b, 'b2'), await post(c, 'c2')];
  const feed = await waitFor('4 feed events', 20_000, () => {
    const got = feedEvents(reader.client, `feed:${a}`);
    return got.length >= 4 ? got : undefined;
  });
  await other.client.frame((f) => carries(f, `feed:${fan}`, 'b2'));
  assert.equal(new Set(feed.map((f) => eventOf(f).id)).size, feed.length, 'each event once');
  assert.deepEqual(
    feed.map((f) => f.offset),
    ['1', '2', '3', '4'],
    'feed offsets count on with no gap',
  );
  for (const author of [b, c]) {
    const channelOrder = bodies(feedEvents(reader.client, `creator:${author}`));
    assert.deepEqual(bodies(feed, author), channelOrder, `the order of creator:${author}`);
    assert.equal(channelOrder.length, 2);
  }
  const latencies = posts.map((p) => (reader.arrivals.get(idOf(feed, p.body)) ?? NaN) - p.sentAt);
  t.diagnostic(`POST -> feed frame (ms): ${latencies.map((l) => l.toFixed(0)).join(', ')}`);

  // A follow made while connected: the user.followed event reaches the node (on user:<a>),
  // after which d's posts arrive.
  const followedAt = performance.now();
  await api('PUT', `/me/following/${d}`, a);
  await reader.client.frame((f) => f.op === 'event' && eventOf(f).type === 'user.followed');
  t.diagnostic(`PUT follow -> user.followed on the node: ${(performance.now() - followedAt).toFixed(0)} ms`);
  await post(d, 'd1');
  await reader.client.frame((f) => carries(f, `feed:${a}`, 'd1'));

  // An unfollow stops deliveries: c3 reaches the socket on creator:<c> but never on the feed.
  await api('DELETE', `/me/following/${c}`, a);
  await reader.client.frame((f) => f.op === 'event' && eventOf(f).type === 'user.unfollowed');
  await post(c, 'c3');
  await reader.client.frame((f) => carries(f, `creator:${c}`, 'c3'));
  await post(b, 'b3');
  await reader.client.frame((f) => carries(f, `feed:${a}`, 'b3'));
  assert.deepEqual(bodies(feedEvents(reader.client, `feed:${a}`), c), ['c1', 'c2']);
  assert.deepEqual(await api('GET', `/users/${c}`, a), { id: c, followerCount: 0, followingCount: 0 });
});

test('a follower who reconnects with their last feed position should get recovered: false and find what they missed in GET /me/feed', async () => {
  const [a, b] = [`ra-${iso.run}`, `rb-${iso.run}`];
  await api('PUT', `/me/following/${b}`, a);
  const first = await connect(a, 0);
  await first.subscribe(`feed:${a}`);
  // Someone else on b's channel tells when a post was routed (so it is missed, not in flight).
  const watcher = await connect(`rw-${iso.run}`, 0);
  await watcher.subscribe(`creator:${b}`);
  await post(b, 'seen');
  const last = await first.client.frame((f) => carries(f, `feed:${a}`, 'seen'));
  first.client.close();
  await first.client.closed();

  const missed = await post(b, 'missed while away');
  await watcher.client.frame((f) => carries(f, `creator:${b}`, 'missed while away'));
  const again = await connect(a, 1);
  const ack = await again.subscribe(`feed:${a}`, { offset: String(last.offset), epoch: String(last.epoch) });
  assert.deepEqual([ack.recovered, ack.replayed, ack.offset], [false, 0, '0']);
  const page = (await api('GET', '/me/feed?limit=2', a)) as { items: { id: string; body: string }[] };
  assert.deepEqual(
    page.items.map((p) => p.body),
    ['missed while away', 'seen'],
  );
  assert.equal(page.items[0]?.id, missed.id);
  // And the feed is live again on the new node.
  await post(b, 'after');
  const live = await again.client.frame((f) => carries(f, `feed:${a}`, 'after'));
  assert.equal(live.epoch, ack.epoch);
  assert.equal(live.offset, '1');
});

function idOf(feed: Frame[], body: string): string {
  return eventOf(feed.find((f) => eventOf(f).data.body === body) ?? assert.fail(`no ${body}`)).id;
}
