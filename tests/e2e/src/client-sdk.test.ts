import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { createClient } from '@ripple/client';
import type { ClientOptions, ConnectionState, EventContext, RippleClient } from '@ripple/client';
import { createEventProducer, createKafka } from '@ripple/kafka';
import type { EventProducer } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, runId, testInfra, waitUntil } from '@ripple/testing';
import { CheckedWebSocket, assertFramesConform, checkedFetch } from './frame-contract.js';
import { isolatedRun, publishPostEvents, spawnService } from './harness.js';
import type { RunningService } from './harness.js';
import { startTcpProxy } from './tcp-proxy.js';
import type { TcpProxy } from './tcp-proxy.js';

// @ripple/client against real gateway processes (real Kafka and Redis) behind a TCP proxy that
// plays the load balancer and the flaky network.
const iso = isolatedRun('sdk');
const secret = jwtSecret(iso.jwtSecretText);
const env = {
  ...iso.env,
  KAFKA_GROUP_ID: `sdk.${iso.run}`,
  KAFKA_SESSION_TIMEOUT_MS: '6000',
  REGISTRY_HEARTBEAT_MS: '300',
  DRAIN_WINDOW_MS: '500',
  WS_PING_INTERVAL_MS: '1000',
  TOKEN_REFRESH_WINDOW_MS: '2000',
};
const kafka = createKafka({
  brokers: testInfra.kafkaBrokers,
  clientId: 'sdk-e2e',
  logger: createLogger('sdk', 'silent'),
});
let producer: EventProducer;
let a: RunningService;
let b: RunningService;
let proxy: TcpProxy;
const clients: RippleClient[] = [];

before(async () => {
  [a, b] = await Promise.all([
    spawnService('fanout-gateway', { ...env, NODE_ID: `a-${iso.run}` }),
    spawnService('fanout-gateway', { ...env, NODE_ID: `b-${iso.run}` }),
  ]);
  proxy = await startTcpProxy(a.port);
  producer = createEventProducer(kafka);
  await producer.connect();
});

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

// Every frame a client received over the whole file was one the gateway AsyncAPI document allows.
after(() => assertFramesConform());

after(() =>
  cleanupAll(
    () => proxy?.close(),
    () => Promise.all([a?.stop('SIGKILL'), b?.stop('SIGKILL')]),
    () => producer?.disconnect(),
    () => iso.cleanup(),
  ),
);

/** A client through the proxy, recording its states and every event of `channel`. */
function connectClient(user: string, channel: string, extra: Partial<ClientOptions> = {}) {
  const states: ConnectionState[] = [];
  const events: (EventContext & { id: string })[] = [];
  const gaps: EventContext[] = [];
  let tokens = 0;
  const client = createClient({
    url: `ws://127.0.0.1:${proxy.port}/ws`,
    getToken: () => {
      tokens++;
      return signAccessToken(secret, user);
    },
    // Every frame and SSE event the clients receive is checked against the gateway AsyncAPI document.
    WebSocket: CheckedWebSocket,
    fetch: checkedFetch,
    backoff: { initialMs: 200, maxMs: 2000 },
    ...extra,
  });
  clients.push(client);
  client.on('state', (s) => states.push(s));
  const subscription = client.subscribe(channel, {
    onEvent: (event, context) => events.push({ id: event.id, ...context }),
    onGap: (position) => gaps.push(position),
  });
  return { client, subscription, states, events, gaps, tokens: () => tokens };
}

/** Every published id exactly once, in offset order with no offset skipped, and no gap reported. */
function assertExactlyOnceInOrder(
  got: { events: (EventContext & { id: string })[]; gaps: EventContext[] },
  published: string[],
): void {
  const ids = got.events.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length, 'no event twice');
  assert.deepEqual([...ids].sort(), [...published].sort(), 'every published event');
  for (let i = 1; i < got.events.length; i++) {
    const [prev, cur] = [got.events[i - 1], got.events[i]];
    assert.equal(cur?.epoch, prev?.epoch);
    assert.equal(Number(cur?.offset), Number(prev?.offset) + 1, `offset after ${prev?.offset}`);
  }
  assert.deepEqual(got.gaps, []);
}

const author = (): string => `author${runId()}`;

test('a client whose TCP connection drops mid-stream should receive every event once, in order', async () => {
  proxy.target = a.port;
  const creator = author();
  const got = connectClient(`reader${runId()}`, `creator:${creator}`);
  await got.subscription.ready;
  const published = await publishPostEvents(producer, iso.env.KAFKA_TOPIC_PREFIX, creator, 150);
  await waitUntil('the stream to start', 20_000, () => got.events.length > 0);
  const acceptedBefore = proxy.accepted;
  proxy.dropAll(); // mid-stream: some events delivered, the rest in flight or not yet routed
  published.push(...(await publishPostEvents(producer, iso.env.KAFKA_TOPIC_PREFIX, creator, 150)));
  await waitUntil('all 300 events', 30_000, () => got.events.length >= published.length);
  assertExactlyOnceInOrder(got, published);
  assert.ok(proxy.accepted > acceptedBefore, 'the client reconnected');
  assert.deepEqual(got.states.slice(0, 3), ['connected', 'disconnected', 'connecting']);
  assert.equal(got.client.state, 'connected');
});

test('a client refused with 4001 should reconnect at once with a fresh token', async () => {
  proxy.target = a.port;
  let calls = 0;
  const got = connectClient(`fresh${runId()}`, `creator:${author()}`, {
    getToken: () => (++calls === 1 ? Promise.resolve('not-a-jwt') : signAccessToken(secret, 'fresh')),
  });
  await got.subscription.ready;
  assert.equal(calls, 2);
  assert.deepEqual(got.states, ['disconnected', 'connecting', 'connected']);
});

test('a client should refresh its token when asked and keep its connection past the first expiry', async () => {
  proxy.target = a.port;
  const creator = author();
  const user = `refresher${runId()}`;
  const expiries: number[] = [];
  const got = connectClient(user, `creator:${creator}`, {
    getToken: async () => {
      const token = await signAccessToken(secret, user, { ttlSeconds: 3 });
      expiries.push(Date.now() + 3000);
      return token;
    },
  });
  await got.subscription.ready;
  await waitUntil('a refreshed token', 10_000, () => expiries.length >= 2);
  const firstExpiry = expiries[0] ?? 0;
  await waitUntil('the first token to expire', 10_000, () => Date.now() > firstExpiry + 500);
  const published = await publishPostEvents(producer, iso.env.KAFKA_TOPIC_PREFIX, creator, 3);
  await waitUntil('the events', 20_000, () => got.events.length >= 3);
  assertExactlyOnceInOrder(got, published);
  assert.deepEqual(got.states, ['connected'], 'never disconnected');
});

test('a client whose WebSocket cannot connect should fall back to SSE and recover after a drop', async () => {
  proxy.target = a.port;
  const creator = author();
  /** A WebSocket that always dials a closed port. */
  class Unreachable extends CheckedWebSocket {
    constructor(url: string) {
      super(url.replace(`:${proxy.port}/`, ':1/'));
    }
  }
  const got = connectClient(`sse${runId()}`, `creator:${creator}`, { WebSocket: Unreachable });
  await got.subscription.ready;
  const published = await publishPostEvents(producer, iso.env.KAFKA_TOPIC_PREFIX, creator, 20);
  await waitUntil('the first 20 events over SSE', 20_000, () => got.events.length >= 20);
  proxy.dropAll();
  published.push(...(await publishPostEvents(producer, iso.env.KAFKA_TOPIC_PREFIX, creator, 20)));
  await waitUntil('all 40 events', 20_000, () => got.events.length >= 40);
  assertExactlyOnceInOrder(got, published);
});

test('a client of a draining node should reconnect to another node and recover what it missed', async () => {
  proxy.target = a.port;
  const creator = author();
  const got = connectClient(`drained${runId()}`, `creator:${creator}`);
  // An observer on the node that stays shows when events are in that node's history.
  const observer = createClient({
    url: `ws://127.0.0.1:${b.port}/ws`,
    getToken: () => signAccessToken(secret, 'observer'),
    WebSocket: CheckedWebSocket,
  });
  clients.push(observer);
  let observed = 0;
  await observer.subscribe(`creator:${creator}`, { onEvent: () => observed++ }).ready;
  await got.subscription.ready;
  const published = await publishPostEvents(producer, iso.env.KAFKA_TOPIC_PREFIX, creator, 50);
  await waitUntil('the first events', 20_000, () => got.events.length >= 50);
  // The load balancer sends new connections to the node that stays, once these were routed.
  proxy.target = b.port;
  const release = proxy.hold();
  assert.equal(await a.stop('SIGTERM'), 0);
  assert.notEqual(got.client.state, 'connected');
  published.push(...(await publishPostEvents(producer, iso.env.KAFKA_TOPIC_PREFIX, creator, 50)));
  await waitUntil('the missed events in history', 20_000, () => observed >= 100);
  release();
  published.push(...(await publishPostEvents(producer, iso.env.KAFKA_TOPIC_PREFIX, creator, 50)));
  await waitUntil('all 150 events', 30_000, () => got.events.length >= published.length);
  assertExactlyOnceInOrder(got, published);
  assert.equal(got.client.state, 'connected');
});
