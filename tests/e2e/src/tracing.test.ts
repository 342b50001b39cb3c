import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { cleanupAll, waitFor } from '@ripple/testing';
import { callApi, TestClient, isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';
import { startOtlpReceiver } from './otlp-receiver.js';
import type { ReceivedSpan } from './otlp-receiver.js';

// Every process exports its spans to a receiver inside this test. One post created over HTTP must
// leave one trace that runs through post-service, its database transaction, the relay's Kafka send,
// the gateway's consume, and the delivery on both gateway nodes: the one that consumed the event
// and the one that got it over the cross-node Redis hop.
const iso = isolatedRun('trace');
const secret = jwtSecret(iso.jwtSecretText);
let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
const nodes: RunningService[] = [];
let postService: RunningService;
const clients: TestClient[] = [];
const author = `au${iso.run}`;

before(async () => {
  receiver = await startOtlpReceiver();
  const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '100' };
  for (const id of ['a', 'b']) {
    nodes.push(
      await spawnService('fanout-gateway', {
        ...iso.env,
        ...otel,
        NODE_ID: `${id}-${iso.run}`,
        KAFKA_GROUP_ID: `trace.${iso.run}.gateway`,
      }),
    );
  }
  postService = await spawnService('post-service', {
    ...iso.env,
    ...otel,
    DATABASE_URL: iso.databaseUrl('post-service'),
    OUTBOX_POLL_INTERVAL_MS: '200',
  });
});

after(() =>
  cleanupAll(
    ...clients.map((c) => () => c.close()),
    () => Promise.all([postService?.stop(), ...nodes.map((n) => n.stop())]),
    () => receiver?.close(),
    () => iso.cleanup(),
  ),
);

async function watch(node: RunningService, user: string): Promise<TestClient> {
  const token = await signAccessToken(secret, user);
  const client = TestClient.connect(`ws://127.0.0.1:${node.port}/ws?access_token=${token}`);
  clients.push(client);
  await client.frame((f) => f.op === 'welcome');
  client.send({ op: 'subscribe', id: 'c', channel: `creator:${author}` });
  await client.frame((f) => f.op === 'ack');
  return client;
}

/** The chain of ancestors of `span` among the received spans, nearest first. */
function ancestors(span: ReceivedSpan): ReceivedSpan[] {
  const byId = new Map(receiver.spans.map((s) => [s.spanId, s]));
  const chain: ReceivedSpan[] = [];
  for (let p = span.parentSpanId; p !== undefined;) {
    const parent = byId.get(p);
    if (!parent) break;
    chain.push(parent);
    p = parent.parentSpanId;
  }
  return chain;
}

test('one trace should follow a post from the HTTP request to the socket on both gateway nodes', async () => {
  const [onA, onB] = [await watch(nodes[0] as RunningService, 'wa'), await watch(nodes[1] as RunningService, 'wb')];
  const res = await callApi(postService, 'POST', '/posts', {
    token: await signAccessToken(secret, author),
    body: { body: 'traced' },
  });
  assert.equal(res.status, 201);
  await onA.frame((f) => f.op === 'event');
  await onB.frame((f) => f.op === 'event');

  const server = await waitFor('the post-service HTTP server span', 20_000, () =>
    receiver.spans.find((s) => s.service === 'post-service' && s.kind === 2 && s.attributes['http.route'] === '/posts'),
  );
  const inTrace = () => receiver.spans.filter((s) => s.traceId === server.traceId);
  const isSend = (s: ReceivedSpan) => s.service === 'post-service' && s.kind === 4 && s.name.endsWith('post.events.v1');
  const isConsume = (s: ReceivedSpan) => s.service === 'fanout-gateway' && s.kind === 5;
  const isDelivery = (s: ReceivedSpan) => s.name === 'gateway.deliver' && Number(s.attributes['ripple.sockets']) >= 1;
  // Each process exports on its own schedule: wait until every hop has arrived.
  const spans = await waitFor('every hop of the trace', 20_000, () => {
    const all = inTrace();
    const nodesDelivering = new Set(all.filter(isDelivery).map((s) => s.attributes['ripple.node_id']));
    const received = all.some((s) => s.name === 'gateway.receive');
    return all.some(isSend) && all.some(isConsume) && received && nodesDelivering.size === 2 ? all : undefined;
  }).catch((err: unknown) => {
    throw new Error(
      `${String(err)}; spans: ${inTrace()
        .map((s) => `${s.service}:${s.name}`)
        .join(', ')}`,
    );
  });

  const names = (service: string) => spans.filter((s) => s.service === service).map((s) => s.name);
  assert.ok(
    spans.some(
      (s) =>
        s.service === 'post-service' &&
        (s.name.startsWith('prisma:') ||
          // pg's instrumentation (the group commit's statements) uses the stable semantic conventions.
          s.attributes['db.system.name'] === 'postgresql' ||
          s.attributes['db.system'] === 'postgresql'),
    ),
    `a database span in the trace: ${names('post-service').join(', ')}`,
  );
  assert.ok(
    names('post-service').some((name) => name.startsWith('pg.query:posts.insert ')),
    `the group commit's span says what it writes: ${names('post-service').join(', ')}`,
  );
  const send = spans.find(isSend);
  const consume = spans.find(isConsume);
  const deliveries = spans.filter(isDelivery);
  assert.ok(send && consume);
  assert.ok(ancestors(send).includes(server), 'the send descends from the HTTP request');
  assert.ok(ancestors(consume).includes(send), 'the consume continues the producer span');

  for (const delivery of deliveries) {
    const chain = ancestors(delivery);
    assert.ok(
      chain.includes(consume) || delivery.parentSpanId === consume.spanId,
      'each delivery descends from the consume',
    );
    assert.ok(chain.includes(server), 'and from the HTTP request');
  }
  const consumingNode = deliveries.find((d) => ancestors(d)[0] === consume)?.attributes['ripple.node_id'];
  assert.ok(consumingNode, 'one delivery is on the consuming node');
  const remote = deliveries.filter((d) => d.attributes['ripple.node_id'] !== consumingNode);
  assert.ok(remote.length > 0, 'the other node delivers in the same trace after the cross-node hop');
  for (const delivery of remote) {
    const [received] = ancestors(delivery);
    assert.equal(received?.name, 'gateway.receive', "the other node's delivery is under its gateway.receive span");
    assert.equal(received.attributes['ripple.node_id'], delivery.attributes['ripple.node_id']);
  }
});

test('logs should carry the trace and span ids of the request they belong to', () => {
  const server = receiver.spans.find((s) => s.service === 'post-service' && s.kind === 2);
  assert.ok(server);
  const lines = postService
    .output()
    .split('\n')
    .filter((l) => l.includes(`"trace_id":"${server.traceId}"`));
  assert.ok(lines.length > 0, 'request logs carry the trace id');
  assert.ok(lines.every((l) => /"span_id":"[0-9a-f]{16}"/.test(l)));
});
