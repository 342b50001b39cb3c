import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { createEvent, toOutboxMessage } from '@ripple/events';
import { createEventProducer, createKafka } from '@ripple/kafka';
import type { EventProducer } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, testInfra, waitUntil } from '@ripple/testing';
import { TestClient, isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// After SIGKILL of one of two gateways, the survivor takes the dead node's partitions after the
// consumer session timeout (the default, 6 s): a client of the survivor keeps receiving every
// event, none of them more than 10 s late.
const iso = isolatedRun('takeover');
const secret = jwtSecret(iso.jwtSecretText);
const nodes: RunningService[] = [];
let client: TestClient | undefined;
let producer: EventProducer;

before(async () => {
  const env = { ...iso.env, KAFKA_TOPIC_PARTITIONS: '4', KAFKA_GROUP_ID: `takeover.${iso.run}` };
  nodes.push(await spawnService('fanout-gateway', { ...env, NODE_ID: `a-${iso.run}` }));
  nodes.push(await spawnService('fanout-gateway', { ...env, NODE_ID: `b-${iso.run}` }));
  producer = createEventProducer(
    createKafka({ brokers: testInfra.kafkaBrokers, clientId: 'takeover-e2e', logger: createLogger('t', 'silent') }),
  );
  await producer.connect();
});

after(() =>
  cleanupAll(
    () => client?.close(),
    () => Promise.all(nodes.map((n) => n.stop('SIGKILL'))),
    () => producer?.disconnect(),
    () => iso.cleanup(),
  ),
);

/** The sum of every sample of `name` on `node` (0 when it has none). */
async function metric(node: RunningService, name: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const samples = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].map((m) => Number(m[1]));
  return samples.reduce((a, b) => a + b, 0);
}

test('after SIGKILL of one gateway, a client of the other should get every event within 10 s', async () => {
  const [a, b] = nodes as [RunningService, RunningService];
  client = TestClient.connect(`ws://127.0.0.1:${b.port}/ws`, {
    authorization: `Bearer ${await signAccessToken(secret, 'u-reader')}`,
  });
  const receivedAt = new Map<string, number>();
  const repeated: string[] = [];
  const lastOffset = new Map<string, number>();
  client.socket.on('message', (data: Buffer) => {
    const frame = JSON.parse(data.toString('utf8')) as {
      op: string;
      channel?: string;
      offset?: string;
      event?: { id: string };
    };
    if (frame.op !== 'event' || !frame.event || frame.channel === undefined) return;
    if (receivedAt.has(frame.event.id)) repeated.push(`${frame.channel}@${frame.offset}: ${frame.event.id}`);
    else receivedAt.set(frame.event.id, Date.now());
    assert.ok(Number(frame.offset) > (lastOffset.get(frame.channel) ?? 0), `offsets go forward on ${frame.channel}`);
    lastOffset.set(frame.channel, Number(frame.offset));
  });
  await client.frame((f) => f.op === 'welcome');
  // Post events are keyed by author: sixteen authors spread the events over the partitions.
  const authors = Array.from({ length: 16 }, (_, i) => `u-tk-${i}`);
  for (const author of authors) {
    client.send({ op: 'subscribe', id: author, channel: `creator:${author}` });
    await client.frame((f) => f.op === 'ack' && f.id === author);
  }

  const publishedAt = new Map<string, number>();
  let publishing = true;
  // One event every 50 ms, the authors in turn, so over every partition.
  let next = 0;
  const publisher = (async () => {
    while (publishing) {
      const event = createEvent('post.created', {
        source: 'takeover-e2e',
        data: {
          postId: randomBytes(6).toString('hex'),
          authorId: authors[next++ % authors.length] ?? 'u-tk-0',
          body: 'x',
          createdAt: new Date().toISOString(),
        },
      });
      const m = toOutboxMessage(event);
      publishedAt.set(event.id, Date.now());
      await producer.send([{ ...m, topic: iso.env.KAFKA_TOPIC_PREFIX + m.topic }]);
      await waitUntil('the next tick', 1000, () => Date.now() - (publishedAt.get(event.id) ?? 0) >= 50);
    }
  })();
  // Both nodes consume (each owns partitions) and the client gets what both route.
  await waitUntil(
    'both nodes consuming',
    30_000,
    async () => (await metric(a, 'events_consumed_total')) > 0 && (await metric(b, 'events_consumed_total')) > 0,
  );
  await waitUntil('events on the socket', 20_000, () => receivedAt.size > 10);

  const consumedByA = await metric(a, 'events_consumed_total');
  const killedAt = Date.now();
  await a.stop('SIGKILL');
  await waitUntil('15 s of publishing after the crash', 20_000, () => Date.now() - killedAt >= 15_000);
  publishing = false;
  await publisher;

  const afterKill = [...publishedAt].filter(([, at]) => at >= killedAt);
  await waitUntil('every event published after the crash on the socket', 30_000, () =>
    afterKill.every(([id]) => receivedAt.has(id)),
  );
  const delays = afterKill.map(([id, at]) => (receivedAt.get(id) ?? Infinity) - at).sort((x, y) => x - y);
  const p99 = delays[Math.min(delays.length - 1, Math.floor(delays.length * 0.99))] ?? Infinity;
  const max = delays.at(-1) ?? Infinity;
  // The survivor routes again what the dead node routed but did not commit: those keep their
  // offsets in history, so the socket never gets an event twice (nor one at a new offset).
  const consumed = (await metric(b, 'events_consumed_total')) + consumedByA;
  console.log(
    JSON.stringify({
      events: delays.length,
      p50: delays[Math.floor(delays.length / 2)],
      p99,
      max,
      routedAgainAtLeast: consumed - publishedAt.size,
    }),
  );
  assert.ok(max <= 10_000, `the longest wait after the crash was ${max} ms`);
  assert.deepEqual(repeated, [], 'no event twice on the socket');
});
