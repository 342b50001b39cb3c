import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { createKafka, createKafkaAdmin } from '@ripple/kafka';
import type { KafkaClient } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, privateKafka, waitUntil } from '@ripple/testing';
import type { PrivateKafka } from '@ripple/testing';
import { callApi, readCheckedTopics, TestClient, isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// Kafka outages on real processes, with a broker of this file's own (other tests keep the shared
// one): post-service starts and serves without Kafka, keeps accepting writes through an outage
// longer than its outbox lease, and everything it accepted reaches Kafka and a gateway socket
// once the broker is back, within a few seconds of it answering. Two broker starts in all.
const iso = isolatedRun('outage');
const secret = jwtSecret(iso.jwtSecretText);
const LEASE_MS = 3000;
let broker: PrivateKafka;
let kafka: KafkaClient;
let postService: RunningService | undefined;
let gateway: RunningService | undefined;
const clients: TestClient[] = [];
/** Ids of every post post-service accepted (2xx). */
const accepted: string[] = [];
/** Post ids seen on the post topic, in arrival order. */
const published = new Set<string>();
let stopReader: (() => Promise<void>) | undefined;

before(async () => {
  broker = await privateKafka();
  kafka = createKafka({ brokers: [broker.brokers], clientId: 'outage-e2e', logger: createLogger('outage', 'silent') });
});

after(() =>
  cleanupAll(
    ...clients.map((c) => () => c.close()),
    () => Promise.all([postService?.stop(), gateway?.stop()]),
    () => stopReader?.(),
    () => broker?.remove(),
    () => iso.cleanup(),
  ),
);

const env = () => ({ ...iso.env, KAFKA_BROKERS: broker.brokers, RATE_LIMIT_MAX: '100000' });

async function createPost(service: RunningService, body: string): Promise<number> {
  const response = await callApi(service, 'POST', '/posts', {
    token: await signAccessToken(secret, 'u-out'),
    body: { body },
  });
  if (response.status === 201) accepted.push(response.json<{ id: string }>().id);
  return response.status;
}

/** Reads the post topic from the beginning into `published` (by CloudEvents subject = post id). */
async function readPostTopic(): Promise<void> {
  const topic = `${iso.env.KAFKA_TOPIC_PREFIX}post.events.v1`;
  const admin = createKafkaAdmin(kafka);
  await admin.connect();
  // post-service creates its topic in the background once Kafka answers.
  await waitUntil('post-service to create its topic', 30_000, async () => (await admin.listTopics()).includes(topic));
  await admin.disconnect();
  const reader = await readCheckedTopics(kafka, {
    groupId: `outage.${iso.run}.reader`,
    topics: [topic],
    fromBeginning: true,
    onMessage: (message) => {
      const event = JSON.parse(message.value?.toString() ?? '{}') as { type: string; subject?: string };
      if (event.type === 'post.created' && event.subject) published.add(event.subject);
    },
  });
  stopReader = () => reader.stop();
}

test('post-service should start and accept writes while its Kafka is unreachable, and publish them once Kafka starts', async () => {
  postService = await spawnService('post-service', {
    ...env(),
    DATABASE_URL: iso.databaseUrl('post-service'),
    OUTBOX_POLL_INTERVAL_MS: '200',
    OUTBOX_LEASE_MS: String(LEASE_MS),
  });
  for (let i = 0; i < 5; i++) assert.equal(await createPost(postService, `before kafka ${i}`), 201);
  const ready = await fetch(`${postService.url}/readyz`);
  assert.equal(ready.status, 200, await ready.text());
  const metrics = await (await fetch(`${postService.url}/metrics`)).text();
  assert.match(metrics, /^outbox_backlog_rows\{[^}]*\} 5$/m, 'the backlog shows the unpublished writes');

  await broker.start();
  await readPostTopic();
  await waitUntil('the 5 posts on Kafka', 30_000, () => accepted.every((id) => published.has(id)));
});

test('an outage longer than the outbox lease should refuse no write, and every accepted post should be delivered after it', async () => {
  assert.ok(postService);
  gateway = await spawnService('fanout-gateway', {
    ...env(),
    KAFKA_GROUP_ID: `outage.${iso.run}.gateway`,
    KAFKA_SESSION_TIMEOUT_MS: '6000',
  });
  const client = TestClient.connect(`ws://127.0.0.1:${gateway.port}/ws`, {
    authorization: `Bearer ${await signAccessToken(secret, 'u-watch')}`,
  });
  clients.push(client);
  await client.frame((f) => f.op === 'welcome');
  client.send({ op: 'subscribe', id: 's', channel: 'creator:u-out' });
  await client.frame((f) => f.op === 'ack' && f.id === 's');
  const delivered = () =>
    new Set(
      client.frames
        .filter((f) => f.op === 'event')
        .map((f) => (f.event as { subject?: string } | undefined)?.subject ?? ''),
    );
  assert.equal(await createPost(postService, 'live'), 201);
  await waitUntil('the live post on the socket', 20_000, () => delivered().has(accepted.at(-1) ?? ''));

  // The outage: writes keep flowing for more than twice the lease.
  await broker.stop();
  const stoppedAt = Date.now();
  const statuses: number[] = [];
  let i = 0;
  while (Date.now() - stoppedAt < LEASE_MS * 2 + 2000) {
    statuses.push(await createPost(postService, `during outage ${i++}`));
    await waitUntil('a moment between writes', 1000, () => Date.now() - stoppedAt >= i * 100);
  }
  const outageWrites = statuses.length;
  assert.ok(
    statuses.every((s) => s === 201),
    `every write during the outage got 201: ${statuses.join(',')}`,
  );
  assert.equal(postService.process.exitCode, null, `post-service is still running:\n${postService.output()}`);
  // Readiness (issue 17, finding 2): neither process leaves its Service over a Kafka outage (the
  // outage shows in outbox age and consumer lag instead).
  for (const service of [postService, gateway]) {
    const ready = await fetch(`${service.url}/readyz`);
    assert.equal(ready.status, 200, `${service.name} /readyz during the outage: ${await ready.text()}`);
  }
  const beforeReturn = new Set(delivered());

  await broker.start();
  const answeredAt = Date.now();
  const outageMs = answeredAt - stoppedAt;
  await waitUntil('a post written during the outage on the socket', 30_000, () =>
    [...delivered()].some((id) => !beforeReturn.has(id)),
  );
  const firstDeliveryMs = Date.now() - answeredAt;
  await waitUntil('every accepted post on Kafka', 60_000, () => accepted.every((id) => published.has(id)));
  await waitUntil('every post since the gateway joined on the socket', 60_000, () => {
    const got = delivered();
    return accepted.slice(5).every((id) => got.has(id));
  });
  assert.equal(postService.process.exitCode, null);
  // The figures, for the README and reviewers.
  console.log(JSON.stringify({ outageMs, outageWrites, leaseMs: LEASE_MS, firstDeliveryMs }));
  // Measured 3.5–3.6 s on the 2-core machine: the first attempts meet "coordinator loading"
  // (~1 s), then the group waits KAFKA_REBALANCE_TIMEOUT_MS (1.5 s) for its pre-restart member,
  // which kafkajs replaced by a new member id (it has no static membership). The goal is 3 s;
  // the bound leaves room for a loaded machine without hiding a return to the old ~24 s.
  assert.ok(firstDeliveryMs <= 6000, `delivery resumed ${firstDeliveryMs} ms after the broker answered`);
});
