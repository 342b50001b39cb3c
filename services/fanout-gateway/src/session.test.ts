import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jwtSecret, signAccessToken, signSubscriptionToken, verifyAccessToken } from '@ripple/auth';
import { LeasedDirectory, MemoryHistory, MemoryLeasedSets, SequentialRouteLog } from '@ripple/registry';
import type { History } from '@ripple/registry';
import { LocalHub } from './hub.js';
import { eventFrame, parseClientFrame } from './protocol.js';
import { Router } from './router.js';
import { Session } from './session.js';
import type { SessionLimits } from './session.js';
import type { ConnectionSink } from './sink.js';
import { Subscriptions } from './subscriptions.js';
import type { DerivedChannels } from './subscriptions.js';
import type { ChannelFrame } from './hub.js';
import { unitMetrics } from './single-node.js';

const secret = jwtSecret('unit-test-secret-long-enough');

/**
 * A ConnectionSink that records; `bufferedAmount` is settable to simulate a slow peer, and
 * `holdHistory()` a transport still holding events from history back (until `handOverHistory()`
 * or the close).
 */
interface FakeSocket {
  bufferedAmount: number;
  sent: string[];
  closed: { code: number; reason: string } | undefined;
  sink: ConnectionSink;
  holdHistory(): void;
  handOverHistory(): void;
}

function fakeSocket(): FakeSocket {
  let held: { promise: Promise<void>; resolve: () => void } | undefined;
  const socket: FakeSocket = {
    bufferedAmount: 0,
    sent: [] as string[],
    closed: undefined as { code: number; reason: string } | undefined,
    sink: {
      send: (_op: string, text: string) => {
        if (!socket.closed) socket.sent.push(text);
      },
      bufferedAmount: () => socket.bufferedAmount,
      historyHandedOver: () => held?.promise ?? Promise.resolve(),
      close: (code: number, reason: string) => {
        socket.closed = { code, reason };
        socket.handOverHistory();
      },
    },
    holdHistory: () => {
      let resolve: () => void = () => undefined;
      const promise = new Promise<void>((r) => (resolve = r));
      held = { promise, resolve };
    },
    handOverHistory: () => {
      held?.resolve();
      held = undefined;
    },
  };
  return socket;
}

/** Lets every pending promise callback of in-memory adapters run (no timers are involved). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

const defaults: SessionLimits = {
  maxSubscriptions: 3,
  sendBufferBytes: 1000,
  ratePerSecond: 1000,
  rateBurst: 1000,
  abuseLimit: 3,
  refreshWindowMs: 1000,
};

function world(history: History = new MemoryHistory(100)) {
  const hub = new LocalHub({ history, fillLimit: 100 });
  const clock = { now: 1_000_000 };
  const directory = new LeasedDirectory(new MemoryLeasedSets(() => clock.now), 't:', 'n1', 15_000);
  return { hub, history, directory, clock };
}

/** A frame of `channel` at `offset` in the channel's current epoch, as a router would make it. */
async function frameOf(history: History, channel: string, offset: string, event = '{}') {
  const { epoch } = await history.position(channel);
  return { channel, offset, epoch, frame: eventFrame(channel, offset, epoch, event) };
}

function session(w = world(), limits: Partial<SessionLimits> = {}, user = 'u1') {
  const socket = fakeSocket();
  const errors: string[] = [];
  let slow = 0;
  let now = 1_000_000;
  const s = new Session(
    'c1',
    { sub: user, exp: undefined },
    socket.sink,
    {
      ...w,
      nodeId: 'n1',
      historyLimit: 100,
      jwtSecret: secret,
      verifyAccess: (token) => verifyAccessToken(secret, token),
      limits: { ...defaults, ...limits },
      now: () => now,
    },
    {
      onError: (code) => errors.push(code),
      onSlowConsumer: () => (slow += 1),
      onClosed: () => undefined,
    },
  );
  const frames = () => socket.sent.map((f) => JSON.parse(f) as Record<string, unknown>);
  const send = async (frame: unknown) => {
    s.receive(typeof frame === 'string' ? frame : JSON.stringify(frame));
    await s.settled();
  };
  return { s, socket, errors, frames, send, slow: () => slow, tick: (ms: number) => (now += ms), ...w };
}

test('parseClientFrame should accept the documented ops and name what is wrong otherwise', () => {
  assert.deepEqual(parseClientFrame('{"op":"ping","id":"1"}'), { op: 'ping', id: '1' });
  assert.equal(parseClientFrame('{"op":"subscribe","channel":"creator:u1"}').op, 'subscribe');
  assert.equal(
    parseClientFrame('{"op":"subscribe","channel":"c:1","since":{"offset":"1","epoch":"e"}}').op,
    'subscribe',
  );
  const codeOf = (text: string) => {
    try {
      parseClientFrame(text);
      return 'ok';
    } catch (err) {
      return (err as { code: string }).code;
    }
  };
  assert.equal(codeOf('nope'), 'GW_BAD_JSON');
  assert.equal(codeOf('[1]'), 'GW_BAD_FRAME');
  assert.equal(codeOf('null'), 'GW_BAD_FRAME');
  assert.equal(codeOf('{"op":"dance"}'), 'GW_UNKNOWN_OP');
  assert.equal(codeOf('{"op":"subscribe"}'), 'GW_BAD_FRAME');
  assert.equal(codeOf('{"op":"ping","extra":true}'), 'GW_BAD_FRAME');
  assert.equal(codeOf('{"op":"subscribe","channel":"c:1","since":{"offset":"x","epoch":"e"}}'), 'GW_BAD_FRAME');
  assert.equal(codeOf('{"op":"refresh"}'), 'GW_BAD_FRAME');
});

test('an error frame should echo only an id the protocol allows (64 characters at most)', async () => {
  const t = session();
  await t.send({ op: 'ping', id: 'x'.repeat(100), extra: true });
  await t.send({ op: 'ping', id: 'y'.repeat(64), extra: true });
  const [long, longest] = t.frames();
  assert.deepEqual([long?.op, long?.code, 'id' in (long ?? {})], ['error', 'GW_BAD_FRAME', false]);
  assert.deepEqual([longest?.op, longest?.id], ['error', 'y'.repeat(64)]);
});

test('a session should ack a subscription with its position and receive what is published on it', async () => {
  const t = session();
  await t.send({ op: 'subscribe', id: 'a', channel: 'creator:u9' });
  assert.deepEqual(t.frames()[0], {
    op: 'ack',
    id: 'a',
    channel: 'creator:u9',
    offset: '0',
    epoch: (await t.history.position('creator:u9')).epoch,
  });
  assert.deepEqual(await t.directory.nodesFor('creator:u9'), ['n1'], 'the node is registered for the channel');
  const first = await frameOf(t.history, 'creator:u9', '1', '{"id":"e1"}');
  assert.equal(t.hub.publish(first), 1);
  assert.deepEqual(t.frames()[1], {
    op: 'event',
    channel: 'creator:u9',
    offset: '1',
    epoch: first.epoch,
    event: { id: 'e1' },
  });
  await t.send({ op: 'unsubscribe', id: 'b', channel: 'creator:u9' });
  assert.equal(t.hub.publish(await frameOf(t.history, 'creator:u9', '2')), 0);
  assert.deepEqual(await t.directory.nodesFor('creator:u9'), []);
});

test('a session should refuse other users channels, chat without a token, and subscriptions over the limit', async () => {
  const t = session();
  await t.send({ op: 'subscribe', id: 'x', channel: 'user:u2' });
  await t.send({ op: 'subscribe', id: 'y', channel: 'chat:r1' });
  await t.send({
    op: 'subscribe',
    id: 'z',
    channel: 'chat:r1',
    token: await signSubscriptionToken(secret, 'u1', 'chat:r1'),
  });
  for (const c of ['post:1', 'post:2', 'post:3']) await t.send({ op: 'subscribe', channel: c });
  assert.deepEqual(t.errors, ['GW_SUBSCRIBE_FORBIDDEN', 'GW_SUBSCRIBE_FORBIDDEN', 'GW_TOO_MANY_SUBSCRIPTIONS']);
  assert.equal(t.s.subscriptions.size, 3);
});

test('a session whose send buffer overflows should be closed with 4009 and forget its subscriptions', async () => {
  const t = session();
  await t.send({ op: 'subscribe', channel: 'post:1' });
  t.socket.bufferedAmount = 5000;
  t.hub.publish(await frameOf(t.history, 'post:1', '1'));
  assert.deepEqual(t.socket.closed, { code: 4009, reason: 'slow consumer' });
  assert.equal(t.slow(), 1);
  await new Promise((r) => setImmediate(r));
  assert.equal(t.hub.subscriptionCount, 0);
});

test('a subscribe with since should replay the missed events after its ack, in order, then go live', async () => {
  const w = world();
  const start = await w.history.position('creator:u1');
  const appended = [];
  for (let i = 1; i <= 3; i++) appended.push(await w.history.append('creator:u1', `{"n":${i}}`));
  const t = session(w);
  await t.send({ op: 'subscribe', id: 's', channel: 'creator:u1', since: start });
  const frames = t.frames();
  assert.deepEqual(frames[0], {
    op: 'ack',
    id: 's',
    channel: 'creator:u1',
    offset: appended[2]?.offset,
    epoch: start.epoch,
    recovered: true,
    replayed: 3,
  });
  assert.deepEqual(
    frames.slice(1).map((f) => f.event),
    [{ n: 1 }, { n: 2 }, { n: 3 }],
  );
  await t.send({ op: 'subscribe', id: 'old', channel: 'post:p1', since: { offset: '5', epoch: 'gone' } });
  assert.equal(t.frames().at(-1)?.recovered, false);
});

test('a subscribe with since should read its replay only once the events from history before it were handed to the transport, frames after it waiting with it', async () => {
  const w = world();
  const start = await w.history.position('creator:u1');
  for (let i = 1; i <= 3; i++) await w.history.append('creator:u1', `{"n":${i}}`);
  let reads = 0;
  const since = w.history.since.bind(w.history);
  w.history.since = (...args: Parameters<typeof since>) => {
    reads += 1;
    return since(...args);
  };
  const t = session(w);
  t.socket.holdHistory(); // an earlier replay still waits for the client to read
  t.s.receive(JSON.stringify({ op: 'subscribe', id: 's', channel: 'creator:u1', since: start }));
  t.s.receive(JSON.stringify({ op: 'ping', id: 'p' }));
  await settle();
  assert.deepEqual([t.frames(), reads, w.hub.subscriptionCount], [[], 0, 0], 'nothing read or joined yet');
  t.socket.handOverHistory();
  await t.s.settled();
  assert.deepEqual(
    t.frames().map((f) => `${String(f.op)}:${String(f.id ?? f.offset)}`),
    ['ack:s', 'event:1', 'event:2', 'event:3', 'pong:p'],
  );
  assert.equal(reads, 1);
});

test('a subscribe with since waiting for the replay before it should join nothing once the connection closed', async () => {
  const w = world();
  const start = await w.history.position('creator:u1');
  await w.history.append('creator:u1', '{"n":1}');
  const t = session(w);
  t.socket.holdHistory();
  t.s.receive(JSON.stringify({ op: 'subscribe', id: 's', channel: 'creator:u1', since: start }));
  await settle();
  t.s.close(4009, 'slow consumer');
  await t.s.settled();
  await t.s.release();
  assert.equal(w.hub.subscriptionCount, 0);
  assert.deepEqual(await w.directory.nodesFor('creator:u1'), []);
  assert.deepEqual(t.frames(), [], 'nothing sent after the close');
});

test('live events that arrive during a replay should follow it without gap or duplicate', async () => {
  const history = new MemoryHistory(100);
  const w = world(history);
  const start = await history.position('post:p1');
  const first = await history.append('post:p1', '{"n":1}');
  // The history answers only after two live events were published: one it also returns, one new.
  let second = first;
  const slowHistory: History = {
    append: (c, p) => history.append(c, p),
    appendMany: (e) => history.appendMany(e),
    position: (c) => history.position(c),
    since: async (c, s, l) => {
      second = await history.append(c, '{"n":2}');
      w.hub.publish({ channel: c, ...second, frame: eventFrame(c, second.offset, second.epoch, '{"n":2}') });
      const answer = await history.since(c, s, l);
      const third = await history.append(c, '{"n":3}');
      w.hub.publish({ channel: c, ...third, frame: eventFrame(c, third.offset, third.epoch, '{"n":3}') });
      return answer;
    },
  };
  const out: ChannelFrame[] = [];
  const subs = new Subscriptions(
    { ...w, history: slowHistory, nodeId: 'n1', historyLimit: 100 },
    { event: (f) => out.push(f), gap: () => assert.fail('no gap') },
  );
  await subs.add('post:p1', start);
  assert.deepEqual(
    out.map((m) => (JSON.parse(m.frame) as { event: { n: number } }).event.n),
    [1, 2, 3],
  );
});

test('the router should append to history, deliver locally and send other nodes one message each', async () => {
  const w = world();
  const sent: { node: string; frames: number }[] = [];
  const metrics = unitMetrics();
  const router = new Router({
    ...w,
    routes: new SequentialRouteLog(w.history, w.directory),
    nodeId: 'n1',
    metrics,
    bus: {
      start: () => Promise.resolve(),
      stop: () => Promise.resolve(),
      send: (node, message) => {
        sent.push({ node, frames: message.frames.length });
        return Promise.resolve();
      },
      broadcast: (message) => {
        sent.push({ node: '*', frames: message.frames.length });
        return Promise.resolve();
      },
    },
  });
  // The registry has been complete for a lease: every node renewed what it holds since.
  await w.directory.refresh({ channels: [], connections: [] });
  w.clock.now += 15_000;
  await w.directory.addChannel('n2', 'creator:u1');
  await w.directory.addChannel('n2', 'user:u1');
  await w.directory.addChannel('n3', 'user:u1');
  const local = session(w);
  await local.send({ op: 'subscribe', channel: 'creator:u1' });
  const { createEvent } = await import('@ripple/events');
  await router.route([
    createEvent('post.created', {
      source: 't',
      data: { postId: 'p1', authorId: 'u1', body: 'b', createdAt: new Date().toISOString() },
    }),
  ]);
  assert.equal(local.frames().at(-1)?.op, 'event');
  assert.deepEqual(
    sent.sort((a, b) => a.node.localeCompare(b.node)),
    [
      { node: 'n2', frames: 2 },
      { node: 'n3', frames: 1 },
    ],
  );
  assert.equal((await w.history.position('creator:u1')).offset, (local.frames().at(-1) as { offset: string }).offset);
});

test('events routed again (a partition taken over before its offsets were committed) should keep their offsets and reach no socket twice', async () => {
  const w = world();
  const router = new Router({
    ...w,
    routes: new SequentialRouteLog(w.history, w.directory),
    nodeId: 'n1',
    metrics: unitMetrics(),
    bus: {
      start: () => Promise.resolve(),
      stop: () => Promise.resolve(),
      send: () => Promise.resolve(),
      broadcast: () => Promise.resolve(),
    },
  });
  const local = session(w);
  await local.send({ op: 'subscribe', channel: 'creator:u1' });
  const { createEvent } = await import('@ripple/events');
  const post = (postId: string) =>
    createEvent('post.created', {
      source: 't',
      data: { postId, authorId: 'u1', body: 'b', createdAt: new Date().toISOString() },
    });
  const [p1, p2, p3] = [post('p1'), post('p2'), post('p3')];
  await router.route([p1, p2]);
  await router.route([p2, p3]); // p2 again, as the node that took over the partition routes it
  await router.route([p1]);
  const events = local.frames().filter((f) => f.op === 'event') as { offset: string; event: { id: string } }[];
  assert.deepEqual(
    events.map((f) => [f.offset, f.event.id]),
    [
      ['1', p1.id],
      ['2', p2.id],
      ['3', p3.id],
    ],
  );
  const stored = await w.history.since(
    'creator:u1',
    { offset: '0', epoch: (await w.history.position('creator:u1')).epoch },
    10,
  );
  assert.equal(stored.entries.length, 3, 'stored once each');
});

test('a session should answer rate-limited frames with errors and close a sustained abuser with 4008', async () => {
  const t = session(world(), { ratePerSecond: 1, rateBurst: 2, abuseLimit: 3 });
  for (let i = 0; i < 5; i++) await t.send({ op: 'ping', id: String(i) });
  assert.deepEqual(t.errors, ['GW_RATE_LIMITED', 'GW_RATE_LIMITED', 'GW_RATE_LIMITED']);
  assert.equal(t.socket.closed, undefined);
  t.tick(1000); // one token back
  await t.send({ op: 'ping', id: 'ok' });
  assert.equal(t.frames().at(-1)?.op, 'pong');
  await t.send({ op: 'ping' });
  assert.deepEqual(t.socket.closed, { code: 4008, reason: 'rate limit exceeded' });
});

test('refresh should accept a new token for the same user only', async () => {
  const t = session();
  await t.send({ op: 'refresh', id: 'r1', token: await signAccessToken(secret, 'u2') });
  assert.equal(t.errors.at(-1), 'AUTH_TOKEN_INVALID');
  await t.send({ op: 'refresh', id: 'r2', token: await signAccessToken(secret, 'u1', { ttlSeconds: 600 }) });
  assert.equal(t.frames().at(-1)?.op, 'ack');
  assert.ok(typeof t.s.user.exp === 'number');
});

test('rate-limited frames should be answered in arrival order, after the frames accepted before them', async () => {
  const t = session(world(), { ratePerSecond: 1, rateBurst: 2, abuseLimit: 1 });
  for (let i = 0; i < 4; i++) t.s.receive(JSON.stringify({ op: 'ping', id: String(i) }));
  await t.s.settled();
  assert.deepEqual(
    t.frames().map((f) => `${String(f.op)}:${String(f.id)}`),
    ['pong:0', 'pong:1', 'error:2'],
    'the accepted pings first, then the refusal, then the close',
  );
  assert.deepEqual(t.socket.closed, { code: 4008, reason: 'rate limit exceeded' });
});

test('a subscribe with since to the own channel, joined on connect, should recover what the client missed before it connected', async () => {
  // The own channel is joined without a position on connect; the client then asks to resume it.
  const w = world();
  const start = await w.history.position('user:u1');
  for (let i = 1; i <= 3; i++) await w.history.append('user:u1', `{"n":${i}}`);
  const t = session(w);
  await t.s.joinOwnChannel();
  await t.send({ op: 'subscribe', id: 'own', channel: 'user:u1', since: start });
  const frames = t.frames();
  assert.deepEqual(frames[0], {
    op: 'ack',
    id: 'own',
    channel: 'user:u1',
    offset: '3',
    epoch: start.epoch,
    recovered: true,
    replayed: 3,
  });
  assert.deepEqual(
    frames.slice(1).map((f) => f.event),
    [{ n: 1 }, { n: 2 }, { n: 3 }],
  );
  // Live again, with no duplicate of the replay.
  const fourth = await w.history.append('user:u1', '{"n":4}');
  w.hub.publish({ ...(await frameOf(w.history, 'user:u1', fourth.offset, '{"n":4}')) });
  w.hub.publish({ ...(await frameOf(w.history, 'user:u1', '3', '{"n":3}')) });
  assert.deepEqual(
    t
      .frames()
      .slice(1)
      .map((f) => f.event),
    [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }],
  );
});

test('a subscribe with since to a channel that already delivered events should not rewind it (no reorder, no duplicate)', async () => {
  const w = world();
  const start = await w.history.position('user:u1');
  const t = session(w);
  await t.s.joinOwnChannel();
  const first = await w.history.append('user:u1', '{"n":1}');
  w.hub.publish(await frameOf(w.history, 'user:u1', first.offset, '{"n":1}'));
  await t.send({ op: 'subscribe', id: 'late', channel: 'user:u1', since: start });
  const frames = t.frames();
  assert.deepEqual(
    frames.map((f) => f.op),
    ['event', 'ack'],
  );
  assert.equal(frames[1]?.recovered, false, 'said so: the client refetches');
});

test('a session should join a derived channel with the access token it holds, the refreshed one after a refresh', async () => {
  const credentials: string[] = [];
  const derived: DerivedChannels = {
    owns: (channel) => channel.startsWith('feed:'),
    join: (_channel, _subscriber, credential) => {
      credentials.push(credential);
      return Promise.resolve({ offset: '0', epoch: 'e' });
    },
    leave: () => Promise.resolve(),
  };
  const first = await signAccessToken(secret, 'u1');
  const s = new Session(
    'c1',
    await verifyAccessToken(secret, first),
    fakeSocket().sink,
    {
      ...world(),
      derived,
      nodeId: 'n1',
      historyLimit: 100,
      jwtSecret: secret,
      verifyAccess: (token) => verifyAccessToken(secret, token),
      limits: defaults,
    },
    { onError: () => undefined, onSlowConsumer: () => undefined, onClosed: () => undefined },
    first,
  );
  const second = await signAccessToken(secret, 'u1', { ttlSeconds: 7200 });
  for (const frame of [
    { op: 'subscribe', id: '1', channel: 'feed:u1' },
    { op: 'refresh', id: '2', token: second },
    { op: 'unsubscribe', id: '3', channel: 'feed:u1' },
    { op: 'subscribe', id: '4', channel: 'feed:u1' },
  ])
    s.receive(JSON.stringify(frame));
  await s.settled();
  assert.deepEqual(credentials, [first, second]);
  await s.release();
});
