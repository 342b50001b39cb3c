import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { Topics } from '@ripple/events';
import { createEventProducer, createKafka, deleteTopics, dlqTopicOf, ensureTopics } from '@ripple/kafka';
import type { EventProducer } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, deleteKeys, runId, testInfra, waitUntil } from '@ripple/testing';
import { TestClient, publishPostEvents, spawnService, stuckMember } from './harness.js';
import type { RunningService } from './harness.js';

// A rolling deploy starts a node while the others are busy: its consumer group's rebalance waits
// for members that rejoin late. The smallest case: one member of the group is stuck in its handler
// (it rejoins only when the handler returns, and the group waits up to its rebalance timeout, 180 s:
// longer than the start deadline below, so a node that waited for its partitions would not start).
const run = runId();
const JWT_SECRET = `rb-secret-${run}-0123456789`;
const topicPrefix = `rb.${run}.`;
const redisPrefix = `rb:${run}:`;
const groupId = `rb.${run}`;
const topics = Object.values(Topics).map((t) => topicPrefix + t);
const env = {
  JWT_SECRET,
  KAFKA_BROKERS: testInfra.kafkaBrokers.join(','),
  KAFKA_TOPIC_PREFIX: topicPrefix,
  KAFKA_TOPIC_PARTITIONS: '2',
  KAFKA_GROUP_ID: groupId,
  REDIS_URL: testInfra.redisUrl,
  REDIS_KEY_PREFIX: redisPrefix,
  REGISTRY_HEARTBEAT_MS: '300',
  NODE_ENV: 'test',
};

const logger = createLogger('rb-e2e', 'silent');
const kafka = createKafka({ brokers: testInfra.kafkaBrokers, clientId: 'rb-e2e', logger });
const redis = new Redis(testInfra.redisUrl);
let producer: EventProducer | undefined;
let busy: Awaited<ReturnType<typeof stuckMember>> | undefined;
let node: RunningService | undefined;
let client: TestClient | undefined;

after(() =>
  cleanupAll(
    () => client?.close(),
    () => node?.stop('SIGKILL'),
    () => busy?.stop(),
    () => producer?.disconnect(),
    () => deleteTopics(kafka, [...topics, ...topics.map(dlqTopicOf)]),
    () => deleteKeys(redis, `${redisPrefix}*`),
    () => redis.disconnect(),
  ),
);

test('a new gateway serves sockets while its consumer group waits for a busy member to rejoin', async () => {
  await ensureTopics(
    kafka,
    [...topics, ...topics.map(dlqTopicOf)].map((topic) => ({ topic, numPartitions: 2, replicationFactor: 1 })),
  );
  producer = createEventProducer(kafka);
  await producer.connect();
  // The busy member: joins first, takes every partition, and is stuck in its handler until released.
  busy = await stuckMember({ kafka, producer, groupId, topics, topicPrefix });

  // The new node joins the group (a rebalance that cannot finish while the busy member is stuck),
  // and still listens, is ready, and takes a subscription.
  // (120 s: a gateway took 48 s to start at load 36 on this machine, with no rebalance to wait for.)
  node = await spawnService('fanout-gateway', { ...env, NODE_ID: `n-${run}` }, 120_000);
  assert.equal((await fetch(`${node.url}/readyz`)).status, 200);
  const token = await signAccessToken(jwtSecret(JWT_SECRET), `reader-${run}`);
  client = TestClient.connect(`ws://127.0.0.1:${node.port}/ws?access_token=${token}`);
  await client.frame((f) => f.op === 'welcome');
  const channel = `creator:author-${run}`;
  client.send({ op: 'subscribe', id: 's1', channel });
  await client.frame((f) => f.op === 'ack' && f.id === 's1');
  assert.ok(!node.output().includes('joined the consumer group'), 'the rebalance was still waiting');

  // Once the busy member rejoins (and here leaves), the node owns the partitions and delivers.
  await busy.stop();
  busy = undefined;
  await waitUntil(
    'the node to join its group',
    60_000,
    () => node?.output().includes('joined the consumer group') === true,
  );
  const [eventId] = await publishPostEvents(producer, topicPrefix, `author-${run}`, 1, randomBytes(4).toString('hex'));
  await client.frame((f) => f.op === 'event' && (f.event as { id?: string } | undefined)?.id === eventId, 30_000);
});
