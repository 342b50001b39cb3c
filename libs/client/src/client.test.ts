import { afterEach, beforeEach, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from './client.js';
import type { ClientOptions, EventContext, RippleClient } from './client.js';

// The client's decisions against a scripted in-memory WebSocket and mocked timers: what it
// sends, when it reconnects, what it delivers. Real gateways: tests/e2e/src/client-sdk.test.ts.

/** A WebSocket double: records what the client sends; the test plays the server. */
class ScriptedSocket {
  static all: ScriptedSocket[] = [];
  readyState = 0;
  readonly sent: Record<string, unknown>[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor(readonly url: string) {
    ScriptedSocket.all.push(this);
  }
  send(text: string): void {
    this.sent.push(JSON.parse(text) as Record<string, unknown>);
  }
  close(): void {
    this.readyState = 3;
  }
  /** The server side: open, then welcome. */
  accept(): void {
    this.readyState = 1;
    this.onopen?.();
    this.push({ op: 'welcome', connectionId: 'c', node: 'n', user: 'u1', heartbeatMs: 60_000 });
  }
  push(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }
  drop(code: number): void {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
}

/** A WebSocket double that, like `ws` on Node, reports the server's WebSocket pings. */
class PingedSocket extends ScriptedSocket {
  private readonly onPing: (() => void)[] = [];
  on(event: string, listener: () => void): this {
    if (event === 'ping') this.onPing.push(listener);
    return this;
  }
  /** The server pings (ws answers the pong by itself). */
  ping(): void {
    for (const listener of this.onPing) listener();
  }
}

const latest = (): ScriptedSocket => {
  const socket = ScriptedSocket.all.at(-1);
  assert.ok(socket, 'a socket was opened');
  return socket;
};
/** Lets pending promises (getToken) settle. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};
/** The latest socket opens and welcomes; the subscribes it triggers are sent. */
const welcome = async (): Promise<void> => {
  latest().accept();
  await settle();
};
const event = (id: string) => ({ id, type: 'post.created', data: {} });
let client: RippleClient;

function start(extra: Partial<ClientOptions> = {}): RippleClient {
  client = createClient({
    url: 'ws://gateway.test/ws',
    getToken: () => Promise.resolve('token'),
    WebSocket: ScriptedSocket,
    transports: ['websocket'],
    backoff: { initialMs: 100, maxMs: 10_000 },
    ...extra,
  });
  return client;
}

beforeEach(() => {
  ScriptedSocket.all = [];
  mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'] });
});
afterEach(() => {
  client.close();
  mock.timers.reset();
});

test('options the client cannot work with should throw CLIENT_OPTIONS_INVALID at once', () => {
  const good = { url: 'ws://127.0.0.1:1/ws', getToken: () => Promise.resolve('t'), WebSocket: ScriptedSocket };
  const bad: unknown[] = [
    undefined,
    { ...good, url: '' },
    { ...good, url: 'not a url' },
    { ...good, url: 'http://127.0.0.1:1/ws' },
    { ...good, getToken: 'token' },
    { ...good, getToken: undefined },
    { ...good, transports: [] },
    { ...good, transports: ['carrier-pigeon'] },
    { ...good, backoff: { initialMs: 'x', maxMs: 'y' } },
    { ...good, backoff: { initialMs: 0 } },
    { ...good, backoff: { initialMs: 30_000, maxMs: 1000 } },
    { ...good, dedupeWindow: -1 },
  ];
  for (const options of bad) {
    assert.throws(
      () => createClient(options as ClientOptions),
      { code: 'CLIENT_OPTIONS_INVALID' },
      JSON.stringify(options),
    );
  }
  assert.throws(() => start().subscribe('creator:u1', {} as never), { code: 'CLIENT_OPTIONS_INVALID' });
});

test('subscriptions made while offline should be sent after welcome, and resumed with since after a drop', async () => {
  start();
  const got: (EventContext & { id: string })[] = [];
  const gaps: EventContext[] = [];
  const sub = client.subscribe('creator:u9', {
    onEvent: (e, context) => got.push({ id: e.id, ...context }),
    onGap: (position) => gaps.push(position),
  });
  await settle();
  assert.equal(latest().url, 'ws://gateway.test/ws?access_token=token');
  assert.deepEqual(latest().sent, []);
  await welcome();
  assert.deepEqual(latest().sent, [{ op: 'subscribe', id: '1', channel: 'creator:u9' }]);
  latest().push({ op: 'ack', id: '1', channel: 'creator:u9', offset: '4', epoch: 'e' });
  await sub.ready;
  latest().push({ op: 'event', channel: 'creator:u9', offset: '5', epoch: 'e', event: event('a') });
  latest().push({ op: 'event', channel: 'creator:u9', offset: '6', epoch: 'e', event: event('b') });
  latest().drop(1006);
  mock.timers.tick(100); // at most initialMs for the first retry
  await settle();
  assert.equal(ScriptedSocket.all.length, 2);
  await welcome();
  assert.deepEqual(latest().sent, [
    { op: 'subscribe', id: '2', channel: 'creator:u9', since: { offset: '6', epoch: 'e' } },
  ]);
  latest().push({ op: 'ack', id: '2', channel: 'creator:u9', offset: '8', epoch: 'e', recovered: true, replayed: 2 });
  latest().push({ op: 'event', channel: 'creator:u9', offset: '6', epoch: 'e', event: event('b') }); // already had it
  latest().push({ op: 'event', channel: 'creator:u9', offset: '7', epoch: 'e', event: event('a') }); // routed twice
  latest().push({ op: 'event', channel: 'creator:u9', offset: '8', epoch: 'e', event: event('c') });
  assert.deepEqual(
    got.map((g) => `${g.id}@${g.offset}`),
    ['a@5', 'b@6', 'c@8'],
  );
  assert.deepEqual(gaps, []);
});

test('an ack with recovered false, or an offset skipped, should be reported as a gap', async () => {
  start();
  const gaps: string[] = [];
  client.subscribe('creator:u9', { onEvent: () => undefined, onGap: (p) => gaps.push(`${p.offset}/${p.epoch}`) });
  await settle();
  await welcome();
  latest().push({ op: 'ack', id: '1', channel: 'creator:u9', offset: '4', epoch: 'e' });
  latest().push({ op: 'event', channel: 'creator:u9', offset: '7', epoch: 'e', event: event('x') });
  latest().drop(4009); // slow consumer: back at once, and recover
  mock.timers.tick(100);
  await settle();
  await welcome();
  latest().push({ op: 'ack', id: '2', channel: 'creator:u9', offset: '0', epoch: 'f', recovered: false });
  assert.deepEqual(gaps, ['6/e', '0/f']);
});

test('a refused subscription should reject ready with the gateway code and be forgotten', async () => {
  start();
  const sub = client.subscribe('user:someone-else', { onEvent: () => undefined });
  await settle();
  await welcome();
  latest().push({ op: 'error', id: '1', code: 'GW_SUBSCRIBE_FORBIDDEN', message: 'no' });
  await assert.rejects(sub.ready, { code: 'GW_SUBSCRIBE_FORBIDDEN' });
  latest().drop(1006);
  mock.timers.tick(100);
  await settle();
  await welcome();
  assert.deepEqual(latest().sent, [], 'not resubscribed');
});

test('a resubscribe refused with a retriable code (GW_FEED_UNAVAILABLE) should be reported and retried with backoff, not dropped', async () => {
  start();
  const errors: string[] = [];
  const got: string[] = [];
  const sub = client.subscribe('feed:u1', { onEvent: (e) => got.push(e.id), onError: (err) => errors.push(err.code) });
  await settle();
  await welcome();
  latest().push({ op: 'ack', id: '1', channel: 'feed:u1', offset: '3', epoch: 'e' });
  await sub.ready;
  latest().drop(1006);
  mock.timers.tick(100);
  await settle();
  await welcome(); // the followee list cannot be loaded just now
  latest().push({ op: 'error', id: '2', code: 'GW_FEED_UNAVAILABLE', message: 'post-service answered 503' });
  assert.deepEqual(errors, ['GW_FEED_UNAVAILABLE'], 'the application is told');
  mock.timers.tick(100); // at most initialMs for the first retry
  await settle();
  assert.deepEqual(latest().sent.at(-1), {
    op: 'subscribe',
    id: '3',
    channel: 'feed:u1',
    since: { offset: '3', epoch: 'e' },
  });
  latest().push({ op: 'ack', id: '3', channel: 'feed:u1', offset: '4', epoch: 'e', recovered: true, replayed: 0 });
  latest().push({ op: 'event', channel: 'feed:u1', offset: '5', epoch: 'e', event: event('later') });
  assert.deepEqual(got, ['later']);
  // A first subscribe refused that way is retried too: ready waits for the acknowledgement.
  let settled = false;
  const other = client.subscribe('feed:u2', { onEvent: () => undefined, onError: (err) => errors.push(err.code) });
  other.ready.then(
    () => (settled = true),
    () => (settled = true),
  );
  await settle();
  latest().push({ op: 'error', id: '4', code: 'GW_FEED_UNAVAILABLE', message: 'timeout' });
  await settle();
  assert.equal(settled, false, 'ready waits');
  assert.deepEqual(errors, ['GW_FEED_UNAVAILABLE', 'GW_FEED_UNAVAILABLE']);
  mock.timers.tick(100);
  await settle();
  assert.deepEqual(latest().sent.at(-1), { op: 'subscribe', id: '5', channel: 'feed:u2' });
  latest().push({ op: 'ack', id: '5', channel: 'feed:u2', offset: '0', epoch: 'e' });
  await other.ready;
});

test('close code 4008 should back off to at least half the cap; 4001 should reconnect at once', async () => {
  const states: string[] = [];
  start().on('state', (s) => states.push(s));
  await settle();
  await welcome();
  latest().drop(4008);
  mock.timers.tick(4999);
  await settle();
  assert.equal(ScriptedSocket.all.length, 1, 'still waiting');
  mock.timers.tick(5001);
  await settle();
  assert.equal(ScriptedSocket.all.length, 2);
  await welcome();
  latest().drop(4001);
  mock.timers.tick(0);
  await settle();
  assert.equal(ScriptedSocket.all.length, 3);
  assert.deepEqual(states, ['connected', 'disconnected', 'connecting', 'connected', 'disconnected', 'connecting']);
});

test('a reconnect notice should move the client to another connection at once, keeping its subscriptions', async () => {
  start();
  client.subscribe('creator:u9', { onEvent: () => undefined });
  await settle();
  await welcome();
  latest().push({ op: 'ack', id: '1', channel: 'creator:u9', offset: '3', epoch: 'e' });
  latest().push({ op: 'reconnect', reason: 'node draining' });
  mock.timers.tick(100);
  await settle();
  assert.equal(ScriptedSocket.all.length, 2);
  await welcome();
  assert.deepEqual(latest().sent, [
    { op: 'subscribe', id: '2', channel: 'creator:u9', since: { offset: '3', epoch: 'e' } },
  ]);
});

test('a getToken that fails should count as a failed attempt, retried with backoff', async () => {
  let calls = 0;
  const states: string[] = [];
  start({
    getToken: () => (++calls === 1 ? Promise.reject(new Error('identity provider down')) : Promise.resolve('t')),
  });
  client.on('state', (s) => states.push(s));
  await settle();
  assert.equal(ScriptedSocket.all.length, 0);
  assert.deepEqual(states, ['disconnected']);
  mock.timers.tick(100);
  await settle();
  assert.equal(latest().url, 'ws://gateway.test/ws?access_token=t');
});

test('a connection whose frames wait behind a stalled event loop should not be called dead before they are read', async () => {
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  start();
  await settle();
  latest().accept(); // heartbeatMs 60 s, last frame at 0
  await settle();
  mock.timers.tick(60_000);
  await turn();
  // The process stalls: the next heartbeat timer comes due 180 s after the last frame read, and
  // runs before the frames that arrived meanwhile are read.
  mock.timers.tick(120_000);
  latest().push({ op: 'pong' });
  await turn();
  assert.equal(client.state, 'connected');
  assert.equal(ScriptedSocket.all.length, 1, 'no reconnect');
  // A connection that stays silent is still dropped.
  mock.timers.tick(180_000);
  await turn();
  assert.notEqual(client.state, 'connected');
});

test('a connection the server is heard on should not be pinged, and one silent for a heartbeat should be', async () => {
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  const pings = () => latest().sent.filter((f) => f.op === 'ping').length;
  start();
  await settle();
  latest().accept(); // heartbeatMs 60 s
  await settle();
  for (let i = 0; i < 3; i++) {
    mock.timers.tick(30_000);
    latest().push({ op: 'pong' }); // any frame proves the connection alive
    mock.timers.tick(30_000); // the heartbeat check: 30 s of silence
    await turn();
  }
  assert.equal(pings(), 0, 'no ping while frames arrive');
  mock.timers.tick(60_000); // 90 s of silence
  await turn();
  assert.equal(pings(), 1, 'a ping once a heartbeat passed in silence');
  assert.equal(client.state, 'connected');
});

test("the server's WebSocket pings should keep a connection without frames alive", async () => {
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
  start({ WebSocket: PingedSocket });
  await settle();
  latest().accept(); // heartbeatMs 60 s
  await settle();
  const socket = latest();
  assert.ok(socket instanceof PingedSocket);
  for (let i = 0; i < 6; i++) {
    mock.timers.tick(30_000);
    socket.ping();
    await turn();
  }
  // 180 s without a frame, three heartbeats, but pinged by the server every 30 s.
  assert.equal(client.state, 'connected');
  assert.equal(ScriptedSocket.all.length, 1, 'no reconnect');
  assert.equal(latest().sent.filter((f) => f.op === 'ping').length, 0, 'nothing to ask');
});

/** SSE streams a scripted `fetch` opened: the test plays the gateway on each. */
function scriptedSse() {
  const streams: { url: URL; push(frame: Record<string, unknown>): void }[] = [];
  const fetchImpl = ((input: string | URL) => {
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
    const encoder = new TextEncoder();
    streams.push({
      url: new URL(String(input)),
      push: (frame) =>
        controller.enqueue(encoder.encode(`event: ${String(frame.op)}\ndata: ${JSON.stringify(frame)}\n\n`)),
    });
    return Promise.resolve(new Response(body, { status: 200, headers: { 'content-type': 'text/event-stream' } }));
  }) as typeof fetch;
  const turns = async (n = 10) => {
    for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
  };
  return { streams, fetchImpl, turns };
}

test('over SSE, a channel refused once the stream started should reject ready, or be retried on a new stream when retriable', async () => {
  const sse = scriptedSse();
  start({ transports: ['sse'], fetch: sse.fetchImpl, getToken: () => Promise.resolve('h.eyJzdWIiOiJ1MSJ9.s') });
  const errors: string[] = [];
  const feed = client.subscribe('feed:u1', { onEvent: () => undefined, onError: (err) => errors.push(err.code) });
  const room = client.subscribe('creator:u2', { onEvent: () => undefined });
  const post = client.subscribe('post:p1', { onEvent: () => undefined });
  await sse.turns();
  const first = sse.streams.at(-1);
  assert.ok(first);
  assert.equal(first.url.searchParams.get('channels'), 'feed:u1,creator:u2,post:p1');
  first.push({ op: 'welcome', connectionId: 'c', node: 'n', user: 'u1', heartbeatMs: 60_000 });
  first.push({ op: 'ack', channel: 'creator:u2', offset: '0', epoch: 'e' });
  first.push({ op: 'error', channel: 'feed:u1', code: 'GW_SUBSCRIBE_FORBIDDEN', message: 'not yours' });
  // A channel's GW_INTERNAL is that channel's failure, not the stream's end.
  first.push({ op: 'error', channel: 'post:p1', code: 'GW_INTERNAL', message: 'internal error' });
  await sse.turns();
  await room.ready;
  await assert.rejects(feed.ready, { code: 'GW_SUBSCRIBE_FORBIDDEN' });
  await assert.rejects(post.ready, { code: 'GW_INTERNAL' });
  assert.deepEqual([sse.streams.length, client.state], [1, 'connected']);

  // A feed in place, and a new stream (after a drop) that cannot load it just now: the
  // application is told, and a stream opened after a backoff subscribes it again.
  const again = client.subscribe('feed:u1', { onEvent: () => undefined, onError: (err) => errors.push(err.code) });
  await sse.turns(); // a new subscription over SSE reopens the stream
  const second = sse.streams.at(-1);
  assert.ok(second && second !== first);
  second.push({ op: 'welcome', connectionId: 'c', node: 'n', user: 'u1', heartbeatMs: 60_000 });
  second.push({ op: 'ack', channel: 'creator:u2', offset: '0', epoch: 'e', recovered: true, replayed: 0 });
  second.push({ op: 'ack', channel: 'feed:u1', offset: '0', epoch: 'f' });
  await sse.turns();
  await again.ready;
  second.push({ op: 'reconnect', reason: 'draining' });
  await sse.turns();
  mock.timers.tick(100);
  await sse.turns();
  const third = sse.streams.at(-1);
  assert.ok(third && third !== second);
  third.push({ op: 'welcome', connectionId: 'c', node: 'n', user: 'u1', heartbeatMs: 60_000 });
  third.push({ op: 'error', channel: 'feed:u1', code: 'GW_FEED_UNAVAILABLE', message: 'post-service is away' });
  await sse.turns();
  assert.deepEqual(errors, ['GW_FEED_UNAVAILABLE']);
  const opened = sse.streams.length;
  mock.timers.tick(100); // at most initialMs for the first retry
  await sse.turns();
  assert.equal(sse.streams.length, opened + 1, 'a new stream for the refused feed');
  assert.equal(sse.streams.at(-1)?.url.searchParams.get('channels'), 'creator:u2,feed:u1');
});
