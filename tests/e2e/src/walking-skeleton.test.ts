import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { cleanupAll } from '@ripple/testing';
import { callApi, TestClient, isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// The walking skeleton on real processes, real Kafka, Redis and PostgreSQL: a post created over
// HTTP reaches a WebSocket client subscribed to the author's creator channel, with the same id.
const iso = isolatedRun('e2e');
const secret = jwtSecret(iso.jwtSecretText);

let postService: RunningService;
let gateway: RunningService;
const clients: TestClient[] = [];

before(async () => {
  // The gateway creates the topics it consumes; start it first so its group is ready.
  gateway = await spawnService('fanout-gateway', { ...iso.env, KAFKA_GROUP_ID: `e2e.${iso.run}.gateway` });
  postService = await spawnService('post-service', {
    ...iso.env,
    DATABASE_URL: iso.databaseUrl('post-service'),
    OUTBOX_POLL_INTERVAL_MS: '200',
  });
});

after(() =>
  cleanupAll(
    ...clients.map((c) => () => c.close()),
    () => Promise.all([postService?.stop(), gateway?.stop()]),
    () => iso.cleanup(),
  ),
);

function wsUrl(query = ''): string {
  return `ws://127.0.0.1:${gateway.port}/ws${query}`;
}

async function connect(userId: string): Promise<TestClient> {
  const token = await signAccessToken(secret, userId);
  const client = TestClient.connect(wsUrl(), { authorization: `Bearer ${token}` });
  clients.push(client);
  await client.frame((f) => f.op === 'welcome');
  return client;
}

test('a post created over HTTP should reach a WebSocket subscriber of its creator channel with the same event', async () => {
  const follower = await connect('u-follower');
  follower.send({ op: 'subscribe', id: '1', channel: 'creator:u42' });
  await follower.frame((f) => f.op === 'ack' && f.id === '1');
  const author = await connect('u42');

  const response = await callApi(postService, 'POST', '/posts', {
    token: await signAccessToken(secret, 'u42'),
    body: { body: 'hello, live world' },
  });
  assert.equal(response.status, 201, response.text);
  const created = response.json<{ id: string; authorId: string }>();
  assert.equal(created.authorId, 'u42');

  const frame = await follower.frame((f) => f.op === 'event' && f.channel === 'creator:u42');
  assert.equal(frame.channel, 'creator:u42');
  const event = frame.event as { id: string; type: string; subject: string; data: { body: string } };
  assert.equal(event.type, 'post.created');
  assert.equal(event.subject, created.id);
  assert.equal(event.data.body, 'hello, live world');

  // The author sees their own post live on their user channel (seed 004).
  const own = await author.frame((f) => f.op === 'event' && (f.event as { type: string }).type === 'post.created');
  assert.equal(own.channel, 'user:u42');
  assert.equal((own.event as { id: string }).id, event.id);
});

test('post-service should expose the outbox backlog, oldest unsent age and publish latency', async () => {
  const metrics = await (await fetch(`${postService.url}/metrics`)).text();
  const value = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(metrics)?.[1]);
  assert.equal(value('outbox_backlog_rows'), 0, 'everything was published');
  assert.equal(value('outbox_oldest_unsent_age_seconds'), 0);
  assert.ok(value('outbox_publish_latency_seconds_count') >= 1, 'the post was measured');
});

test('the gateway should close a socket with a forged, alg:none, expired or missing token with 4001', async () => {
  const forged = await signAccessToken(jwtSecret('not-the-gateway-secret-at-all'), 'u1');
  const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  const none = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'u1', exp: 4102444800 })}.`;
  const expired = await signAccessToken(secret, 'u1', { ttlSeconds: -5 });
  const cases = [
    TestClient.connect(wsUrl(`?access_token=${forged}`)),
    TestClient.connect(wsUrl(`?access_token=${none}`)),
    TestClient.connect(wsUrl(), { authorization: `Bearer ${expired}` }),
    TestClient.connect(wsUrl()),
  ];
  clients.push(...cases);
  const codes = await Promise.all(cases.map((c) => c.closed()));
  assert.deepEqual(codes, [4001, 4001, 4001, 4001]);
  assert.equal(cases[2]?.closeReason, 'AUTH_TOKEN_EXPIRED');
  assert.ok(
    cases.every((c) => c.frames.length === 0),
    'no frame before the close',
  );
});

test('post-service should answer 401 without a token and 400 naming the field for a bad body', async () => {
  const noToken = await callApi(postService, 'POST', '/posts', { body: { body: 'x' } });
  assert.equal(noToken.status, 401);
  assert.equal(noToken.json<{ code: string }>().code, 'AUTH_TOKEN_MISSING');

  const bad = await callApi(postService, 'POST', '/posts', {
    token: await signAccessToken(secret, 'u42'),
    body: { body: '' },
  });
  assert.equal(bad.status, 400);
  const body = bad.json<{ code: string; field: string }>();
  assert.equal(body.code, 'VALIDATION_FAILED');
  assert.equal(body.field, 'body.body');
});

test('the gateway should answer bad frames with error frames and stay up', async () => {
  const client = await connect('u-fuzzy');
  client.send('{not json');
  client.send({ op: 'explode' });
  client.send({ op: 'subscribe', id: 's1', channel: 'user:someone-else' });
  client.send({ op: 'subscribe', id: 's2' });
  client.send({ op: 'ping', id: 'p1' });
  const codes = ['GW_BAD_JSON', 'GW_UNKNOWN_OP', 'GW_SUBSCRIBE_FORBIDDEN', 'GW_BAD_FRAME'];
  for (const code of codes) await client.frame((f) => f.op === 'error' && f.code === code);
  await client.frame((f) => f.op === 'pong' && f.id === 'p1');
  const ready = await fetch(`${gateway.url}/readyz`);
  assert.equal(ready.status, 200);
});

test('frames sent before welcome should be answered after it, in order', async () => {
  const token = await signAccessToken(secret, 'u-eager');
  const client = TestClient.connect(wsUrl(`?access_token=${token}`));
  clients.push(client);
  await new Promise<void>((resolve) => client.socket.once('open', () => resolve()));
  client.send({ op: 'subscribe', id: 'e1', channel: 'creator:u42' });
  client.send({ op: 'ping', id: 'e2' });
  await client.frame((f) => f.op === 'pong' && f.id === 'e2');
  // Presence events of the user's own channel may interleave; the answers keep their order.
  assert.deepEqual(
    client.frames.map((f) => f.op).filter((op) => op !== 'event'),
    ['welcome', 'ack', 'pong'],
  );
});
