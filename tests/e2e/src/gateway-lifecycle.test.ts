import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { Redis } from 'ioredis';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { Topics } from '@ripple/events';
import { createKafka, deleteTopics, dlqTopicOf } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, deleteKeys, runId, testInfra, waitFor, waitUntil, webSocketHandshake } from '@ripple/testing';
import { TestClient, openSse, spawnService } from './harness.js';
import type { RunningService } from './harness.js';
import { expectReleased, liveChannelsOf } from './registry-check.js';

// One gateway process on real Kafka and Redis whose connection set-up is held open by
// FAULT_SETUP_DELAY_MS, so closes during set-up happen deterministically, not by timing.
const run = runId();
const JWT_SECRET = `gw-life-secret-${run}-0123456789`;
const secret = jwtSecret(JWT_SECRET);
const topicPrefix = `gwl.${run}.`;
const redisPrefix = `gwl:${run}:`;
const nodeId = `life-${run}`;
const SETUP_DELAY_MS = 400;

const redis = new Redis(testInfra.redisUrl);
const kafka = createKafka({
  brokers: testInfra.kafkaBrokers,
  clientId: 'gwl-e2e',
  logger: createLogger('gwl', 'silent'),
});
let node: RunningService;
const cleanups: (() => void)[] = [];

before(async () => {
  node = await spawnService('fanout-gateway', {
    JWT_SECRET,
    NODE_ID: nodeId,
    KAFKA_BROKERS: testInfra.kafkaBrokers.join(','),
    KAFKA_TOPIC_PREFIX: topicPrefix,
    KAFKA_TOPIC_PARTITIONS: '1',
    KAFKA_GROUP_ID: `gwl.${run}`,
    KAFKA_SESSION_TIMEOUT_MS: '6000',
    REDIS_URL: testInfra.redisUrl,
    REDIS_KEY_PREFIX: redisPrefix,
    REGISTRY_HEARTBEAT_MS: '200',
    TOKEN_REFRESH_WINDOW_MS: '0',
    FAULT_SETUP_DELAY_MS: String(SETUP_DELAY_MS),
    NODE_ENV: 'test',
  });
});

afterEach(async () => {
  await cleanupAll(...cleanups.splice(0));
  await expectReleased(redis, redisPrefix, node, nodeId);
});

after(() => {
  const topics = Object.values(Topics).map((t) => topicPrefix + t);
  return cleanupAll(
    () => node?.stop('SIGKILL'),
    () => deleteTopics(kafka, [...topics, ...topics.map(dlqTopicOf)]),
    () => deleteKeys(redis, `${redisPrefix}*`),
    () => redis.disconnect(),
  );
});

/** Opens `/sse`; the stream's events arrive in `messages`, `ended()` once the server ended it. */
async function openStream(query: string) {
  const sse = await openSse(`${node.url}/sse?${query}`);
  assert.equal(sse.status, 200);
  cleanups.push(sse.abort);
  return sse;
}

/**
 * Resolves once every set-up that started before this call has run to its end: set-ups all wait
 * the same FAULT_SETUP_DELAY_MS, so when a set-up started now sends `welcome`, the earlier ones
 * are past their delay (ordering, not timing).
 */
async function earlierSetUpsFinished(): Promise<void> {
  const probe = TestClient.connect(
    `ws://127.0.0.1:${node.port}/ws?access_token=${await signAccessToken(secret, 'probe')}`,
  );
  await probe.frame((f) => f.op === 'welcome');
  probe.close();
  await probe.closed();
}

test('a WebSocket the client closes during set-up should leave nothing in the registry', async () => {
  const token = await signAccessToken(secret, 'ws-early-quitter');
  // The `101` leaves with `welcome`, once set-up is done: a client cannot see set-up begin, so it
  // sends the handshake and hangs up halfway into the set-up delay, before any answer.
  const tcp = connect(node.port, '127.0.0.1');
  let answered = 0;
  tcp.on('data', (chunk: Buffer) => (answered += chunk.length));
  tcp.on('error', () => undefined);
  await new Promise<void>((resolve) => tcp.once('connect', () => resolve()));
  tcp.write(webSocketHandshake(`/ws?access_token=${token}`));
  await new Promise<void>((resolve) => setTimeout(resolve, SETUP_DELAY_MS / 2));
  tcp.destroy();
  assert.equal(answered, 0, 'neither the 101 nor welcome before set-up is done');
  await earlierSetUpsFinished();
  await expectReleased(redis, redisPrefix, node, nodeId, SETUP_DELAY_MS + 3000);
  assert.deepEqual(await redis.zrange(`${redisPrefix}presence:{user:ws-early-quitter}`, 0, -1), []);
});

test('an SSE stream the client aborts during set-up should leave nothing in the registry', async () => {
  const token = await signAccessToken(secret, 'sse-early-quitter');
  const stream = await openStream(`channels=creator:early1,post:early2&access_token=${token}`);
  stream.abort(); // headers are out; the server is inside its set-up delay
  assert.equal(stream.messages.length, 0);
  await earlierSetUpsFinished();
  await expectReleased(redis, redisPrefix, node, nodeId, SETUP_DELAY_MS + 3000);
});

test('an SSE stream of 30 channels aborted right after its first ack should release every channel', async () => {
  const token = await signAccessToken(secret, 'sse-thirty');
  const channels = Array.from({ length: 30 }, (_, i) => `creator:thirty${i}`);
  const stream = await openStream(`channels=${channels.join(',')}&access_token=${token}`);
  await waitUntil('the first ack', 10_000, () => stream.messages.some((m) => m.event === 'ack'));
  stream.abort();
  await expectReleased(redis, redisPrefix, node, nodeId);
  // And heartbeats do not bring the entries back.
  const renewed = Number(await redis.zscore(`${redisPrefix}{registry}:nodes`, nodeId));
  await waitUntil('another registry heartbeat', 5000, async () => {
    return Number(await redis.zscore(`${redisPrefix}{registry}:nodes`, nodeId)) > renewed;
  });
  assert.deepEqual(await liveChannelsOf(redis, redisPrefix, nodeId), []);
});

test('an SSE stream should end with AUTH_TOKEN_EXPIRED at its token exp and release its channels', async () => {
  const token = await signAccessToken(secret, 'sse-expiring', { ttlSeconds: 2 });
  const stream = await openStream(`channels=creator:expiring&access_token=${token}`);
  await waitUntil('the ack', 10_000, () => stream.messages.some((m) => m.event === 'ack'));
  const error = await waitFor('the expiry error', 10_000, () => stream.messages.find((m) => m.event === 'error'));
  assert.equal(error.data.code, 'AUTH_TOKEN_EXPIRED');
  await waitUntil('the stream ended', 5000, () => stream.ended());
  const events = stream.messages.map((m) => m.event);
  assert.equal(events.at(-1), 'error', 'nothing after the error');
});

test('a WebSocket with a token valid for 30 days should get welcome and stay open', async () => {
  const token = await signAccessToken(secret, 'long-lived', { ttlSeconds: 30 * 24 * 3600 });
  const client = TestClient.connect(`ws://127.0.0.1:${node.port}/ws?access_token=${token}`);
  cleanups.push(() => client.close());
  await client.frame((f) => f.op === 'welcome');
  client.send({ op: 'ping', id: 'p' });
  await client.frame((f) => f.op === 'pong' && f.id === 'p');
  assert.equal(client.closeCode, undefined);
  assert.deepEqual(
    client.frames.filter((f) => f.op === 'refresh_required' || f.op === 'error'),
    [],
  );
});
