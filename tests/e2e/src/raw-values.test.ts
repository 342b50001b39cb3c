import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { Topics, createEvent, toOutboxMessage } from '@ripple/events';
import { createEventProducer, createKafka } from '@ripple/kafka';
import type { EventProducer } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, testInfra, waitUntil } from '@ripple/testing';
import { TestClient, isolatedRun, openSse, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// Kafka values written by hand, not by the outbox relay: what a gateway gives clients (WebSocket,
// SSE, history replay) must be exactly the event it validated, in frames every client can read.
const stack = isolatedRun('raw');
const secret = jwtSecret(stack.jwtSecretText);
const kafka = createKafka({
  brokers: testInfra.kafkaBrokers,
  clientId: 'raw-e2e',
  logger: createLogger('raw', 'silent'),
});
let gateway: RunningService;
let producer: EventProducer;
const clients: TestClient[] = [];

before(async () => {
  gateway = await spawnService('fanout-gateway', {
    ...stack.env,
    NODE_ID: `raw-${stack.run}`,
    KAFKA_GROUP_ID: `raw.${stack.run}`,
  });
  producer = createEventProducer(kafka);
  await producer.connect();
});

after(() =>
  cleanupAll(
    ...clients.map((c) => () => c.close()),
    () => gateway?.stop(),
    () => producer?.disconnect(),
    () => stack.cleanup(),
  ),
);

type EventFrame = { op: 'event'; channel: string; offset: string; epoch: string; event: Record<string, unknown> };

async function connect(userId: string): Promise<{ client: TestClient; raw: string[] }> {
  const client = TestClient.connect(
    `ws://127.0.0.1:${gateway.port}/ws?access_token=${await signAccessToken(secret, userId)}`,
  );
  clients.push(client);
  const raw: string[] = [];
  client.socket.on('message', (data: Buffer) => raw.push(data.toString('utf8')));
  await client.frame((f) => f.op === 'welcome');
  return { client, raw };
}

async function subscribe(client: TestClient, channel: string, since?: { offset: string; epoch: string }) {
  const id = randomBytes(4).toString('hex');
  client.send({ op: 'subscribe', id, channel, ...(since && { since }) });
  return (await client.frame((f) => f.op === 'ack' && f.id === id)) as { offset: string; epoch: string };
}

function eventsOf(frames: readonly Record<string, unknown>[]): EventFrame[] {
  return frames.filter((f): f is EventFrame => f.op === 'event');
}

test('a gateway should give WebSocket, SSE and history replay exactly the events it validated from hand-written Kafka values', async () => {
  const author = `a${stack.run.replace(/[^A-Za-z0-9]/g, '')}`;
  const postId = `p${randomBytes(4).toString('hex')}`;
  const channels = [`creator:${author}`, `post:${postId}`];
  const at = new Date().toISOString();
  const created = (body: string) =>
    createEvent('post.created', {
      source: 'raw-e2e',
      data: { postId: randomBytes(6).toString('hex'), authorId: author, body, createdAt: at },
    });
  const text = (event: object) => JSON.stringify(event);
  // Each its own event (id): the consumer drops an id it has just seen.
  const liked = () =>
    createEvent('post.liked', {
      source: 'raw-e2e',
      data: { postId, postAuthorId: author, userId: 'u2', likeCount: 7, at },
    });
  const odd = created('x');
  const big = created('€'.repeat(10_000));
  // Each value, and whether the gateway must deliver it (as the event JSON.parse reads from it).
  const values: [string, string, boolean][] = [
    ['plain', text(created('plain')), true],
    ['a repeated data', text(created('dup')).replace('"data":{', '"data":{"evil":"EVIL-data"},"data":{'), true],
    ['a repeated type', text(created('dup-type')).replace('"type":', '"type":"EVIL-type","type":'), true],
    ['CR LF between tokens', JSON.stringify(created('crlf'), null, 2).replaceAll('\n', '\r\n'), true],
    [
      'line separators, escapes, a lone surrogate',
      text(odd).replace('"body":"x"', '"body":"a\u2028b\u2029c\\r\\nd\\u00e9\\ud800\\u0000 data: x"'),
      true,
    ],
    ['an integer past 2^53', text(liked()).replace('"likeCount":7', '"likeCount":9007199254740993'), false],
    ['an integer as 7.0', text(liked()).replace('"likeCount":7', '"likeCount":7.0'), true],
    ['30 KB of body', text(big), true],
    ['a BOM', '\ufeff' + text(created('bom')), false],
    ['an undeclared field', text({ ...created('extra'), extra: 1 }), false],
    ['__proto__', text(created('proto')).replace('"data":{', '"data":{"__proto__":{"admin":true},'), false],
    ['500 KB with an undeclared field', text({ ...created('huge'), extra: 'A'.repeat(500_000) }), false],
    ['the last', text(created('last')), true],
  ];
  const expected = values.filter(([, , delivered]) => delivered).map(([, value]) => JSON.parse(value) as object);

  const live = await connect('viewer');
  const starts = await Promise.all(channels.map((c) => subscribe(live.client, c)));
  const sseRaw: string[] = [];
  const sse = await openSse(
    `${gateway.url}/sse?channels=${channels.join(',')}&access_token=${await signAccessToken(secret, 'viewer2')}`,
  );
  const stopRaw = new AbortController();
  const rawStream = await fetch(
    `${gateway.url}/sse?channels=${channels.join(',')}&access_token=${await signAccessToken(secret, 'viewer3')}`,
    { signal: stopRaw.signal },
  );
  // Read as bytes: the harness' reader splits lines on LF only, where the SSE standard also splits on CR.
  void (async () => {
    const decoder = new TextDecoder();
    const body: AsyncIterable<Uint8Array> = rawStream.body ?? assert.fail('no body');
    for await (const chunk of body) sseRaw.push(decoder.decode(chunk, { stream: true }));
  })().catch(() => undefined);
  await waitUntil('the SSE streams subscribed', 10_000, () =>
    sse.messages.some((m) => m.event === 'ack' && m.data.channel === channels[1]),
  );
  await waitUntil('the raw SSE stream subscribed', 10_000, () => sseRaw.join('').includes(`"post:${postId}"`));

  await producer.send(
    values.map(([, value]) => ({
      topic: stack.env.KAFKA_TOPIC_PREFIX + Topics.post,
      key: author,
      value,
      headers: toOutboxMessage(liked()).headers,
    })),
  );
  await waitUntil('every event on the socket and the SSE stream', 30_000, () => {
    const done = (events: readonly EventFrame[]) =>
      events.some((f) => (f.event.data as { body?: string }).body === 'last');
    return (
      done(eventsOf(live.client.frames)) &&
      done(sse.messages.filter((m) => m.event === 'event').map((m) => m.data as EventFrame))
    );
  });

  const viaWs = eventsOf(live.client.frames).filter((f) => f.channel === channels[0] || f.event.type === 'post.liked');
  const viaSse = sse.messages.filter((m) => m.event === 'event').map((m) => m.data as EventFrame);
  assert.deepEqual(
    viaWs.map((f) => f.event),
    expected,
    'WebSocket: the validated events, in order, none refused',
  );
  assert.deepEqual(
    viaSse.filter((f) => f.channel === channels[0] || f.event.type === 'post.liked').map((f) => f.event),
    expected,
    'SSE: the same',
  );
  await waitUntil('the raw SSE stream has the last event', 10_000, () => sseRaw.join('').includes('"body":"last"'));
  const sseText = sseRaw.join('');
  assert.equal(sseText.includes('\r'), false, 'no CR in the SSE stream: it would end a line');
  for (const line of sseText.split('\n').filter((l) => l.startsWith('data:'))) {
    assert.doesNotThrow(() => JSON.parse(line.slice(5)), `an SSE data line is JSON by itself: ${line.slice(0, 80)}`);
  }
  const rawFrames = [...live.raw, sseText];
  for (const said of ['EVIL', '9007199254740993', '7.0']) {
    assert.equal(
      rawFrames.find((f) => f.includes(said)),
      undefined,
      `no frame says ${said}, which was not what was validated`,
    );
  }

  const later = await connect('later');
  for (const [i, channel] of channels.entries()) {
    const start = starts[i] ?? assert.fail('no start');
    await subscribe(later.client, channel, { offset: start.offset, epoch: start.epoch });
  }
  const ofChannels = (frames: readonly Record<string, unknown>[]) =>
    eventsOf(frames)
      .filter((f) => channels.includes(f.channel))
      .sort((a, b) => a.channel.localeCompare(b.channel) || Number(a.offset) - Number(b.offset))
      .map((f) => [f.channel, f.offset, f.event]);
  await waitUntil('the replay', 10_000, () => ofChannels(later.client.frames).length >= viaWs.length);
  assert.deepEqual(ofChannels(later.client.frames), ofChannels(live.client.frames), 'history replays the live events');
  assert.equal(
    later.raw.find((f) => f.includes('EVIL') || f.includes('9007199254740993')),
    undefined,
    'nor does a replayed frame',
  );
  sse.abort();
  stopRaw.abort();
});
