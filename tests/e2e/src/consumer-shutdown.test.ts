import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Topics } from '@ripple/events';
import { createEventProducer, createKafka, createKafkaAdmin, dlqTopicOf, ensureTopics } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, testInfra, waitUntil } from '@ripple/testing';
import { isolatedRun, spawnService, stuckMember } from './harness.js';

// A process SIGTERMed while its consumer joins its group (a rolling deploy: the new pod is stopped
// again before its join finished) must leave the group: a member it leaves behind is given
// partitions in the next generation and holds them, unconsumed, until its session times out.
const iso = isolatedRun('cs');
const logger = createLogger('cs-e2e', 'silent');
const kafka = createKafka({ brokers: testInfra.kafkaBrokers, clientId: 'cs-e2e', logger });
const admin = createKafkaAdmin(kafka);
const topics = Object.values(Topics).map((t) => iso.env.KAFKA_TOPIC_PREFIX + t);
const cleanups: (() => Promise<unknown>)[] = [];
const adminConnected = admin.connect();

after(() =>
  cleanupAll(
    ...cleanups.reverse(),
    () => admin.disconnect(),
    () => iso.cleanup(),
  ),
);

async function stoppedWhileJoining(service: 'fanout-gateway' | 'notification-service'): Promise<void> {
  const groupId = `cs.${iso.run}.${service}`;
  await adminConnected;
  await ensureTopics(
    kafka,
    [...topics, ...topics.map(dlqTopicOf)].map((topic) => ({ topic, numPartitions: 2, replicationFactor: 1 })),
  );
  const producer = createEventProducer(kafka);
  await producer.connect();
  cleanups.push(() => producer.disconnect());
  // A member already in the group, stuck in its handler: it rejoins, and so lets the service's
  // join finish, only once the test releases it, after the process's own 10 s wait for its Kafka
  // start-up (libs/service) ran out.
  const busy = await stuckMember({
    kafka,
    producer,
    groupId,
    topics,
    topicPrefix: iso.env.KAFKA_TOPIC_PREFIX,
    // Heartbeats every 6 s: once released, it rejoins within the 15 s a stopping consumer waits.
    sessionTimeoutMs: 60_000,
  });
  cleanups.push(() => busy.stop());
  const group = () => admin.describeGroup(groupId);

  const env = { ...iso.env, KAFKA_GROUP_ID: groupId, KAFKA_TOPIC_PARTITIONS: '2', DRAIN_WINDOW_MS: '0' };
  const node = await spawnService(
    service,
    service === 'notification-service' ? { ...env, DATABASE_URL: iso.databaseUrl(service) } : env,
  );
  cleanups.push(() => node.stop('SIGKILL'));
  await waitUntil('the service to be joining', 60_000, async () => (await group()).state === 'PreparingRebalance');
  const exited = node.stop('SIGTERM');
  await new Promise((r) => setTimeout(r, 11_000));
  busy.release();
  assert.equal(await exited, 0, node.output());

  // Once the first member rejoined, the group settles with it alone, and stays so.
  await waitUntil('the group to settle', 30_000, async () => (await group()).state === 'Stable');
  assert.equal((await group()).members.length, 1, 'the stopped process left a member in the group');
  await new Promise((r) => setTimeout(r, 3_000));
  const settled = await group();
  assert.equal(settled.state, 'Stable');
  assert.equal(settled.members.length, 1, 'a member of the stopped process joined the group');
}

test('a gateway SIGTERMed while its consumer joins its group should leave the group', () =>
  stoppedWhileJoining('fanout-gateway'));

test('notification-service SIGTERMed while its consumer joins its group should leave the group', () =>
  stoppedWhileJoining('notification-service'));
