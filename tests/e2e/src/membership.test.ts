import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { Topics } from '@ripple/events';
import { createKafka, createKafkaAdmin } from '@ripple/kafka';
import type { TopicReader } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, testInfra, waitFor, waitUntil } from '@ripple/testing';
import { callApi, readCheckedTopics, TestClient, isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// Membership and presence on real processes: chat-service and three gateways on real Kafka, Redis
// and PostgreSQL. A member removed from a room loses the room on the node that serves them; a
// crashed node's users are announced offline by a surviving node, once.
const iso = isolatedRun('mem');
const secret = jwtSecret(iso.jwtSecretText);
const HEARTBEAT_MS = 300;
const gatewayEnv = {
  ...iso.env,
  KAFKA_GROUP_ID: `mem.${iso.run}.gateway`,
  KAFKA_SESSION_TIMEOUT_MS: '6000',
  REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
};
const gateways: RunningService[] = [];
let chat: RunningService;
const clients: TestClient[] = [];
const kafka = createKafka({
  brokers: testInfra.kafkaBrokers,
  clientId: `mem-e2e-${iso.run}`,
  logger: createLogger('mem-e2e', 'silent'),
});
const presenceTopic = `${iso.env.KAFKA_TOPIC_PREFIX}${Topics.presence}`;
const presence: { type: string; data: { userId: string; nodeId: string } }[] = [];
let reader: TopicReader | undefined;
const admin = createKafkaAdmin(kafka);

before(async () => {
  for (const n of [1, 2, 3]) {
    gateways.push(await spawnService('fanout-gateway', { ...gatewayEnv, NODE_ID: `g${n}-${iso.run}` }));
  }
  chat = await spawnService('chat-service', {
    ...iso.env,
    DATABASE_URL: iso.databaseUrl('chat-service'),
    OUTBOX_POLL_INTERVAL_MS: '100',
  });
  await admin.connect();
  reader = await readCheckedTopics(kafka, {
    groupId: `mem.${iso.run}.watcher`,
    topics: [presenceTopic],
    fromBeginning: true,
    onMessage: (message) => {
      presence.push(JSON.parse(message.value?.toString('utf8') ?? '{}') as (typeof presence)[number]);
    },
  });
});

after(() =>
  cleanupAll(
    ...clients.map((c) => () => c.close()),
    () => reader?.stop(),
    () => admin?.disconnect(),
    () => Promise.all([chat, ...gateways].map((s) => s?.stop('SIGKILL'))),
    () => iso.cleanup(),
  ),
);

type Json = Record<string, unknown>;

async function api(user: string, method: string, path: string, body?: Json): Promise<{ status: number; json: Json }> {
  const res = await callApi(chat, method, path, { token: await signAccessToken(secret, user), body });
  assert.ok(res.status < 300, `${method} ${path} → ${res.status} ${res.text}`);
  return { status: res.status, json: res.text === '' ? {} : res.json() };
}

async function connect(gateway: RunningService, user: string): Promise<TestClient> {
  const token = await signAccessToken(secret, user);
  const client = TestClient.connect(`ws://127.0.0.1:${gateway.port}/ws?access_token=${token}`);
  clients.push(client);
  await client.frame((f) => f.op === 'welcome');
  return client;
}

async function subscribe(client: TestClient, channel: string, token: unknown, since?: unknown) {
  const id = randomBytes(4).toString('hex');
  client.send({ op: 'subscribe', id, channel, token, ...(since !== undefined && { since }) });
  return client.frame((f) => (f.op === 'ack' || f.op === 'error') && f.id === id);
}

const bodies = (client: TestClient, channel: string) =>
  client.frames
    .filter((f) => f.op === 'event' && f.channel === channel)
    .map((f) => (f.event as { type: string; data: Json }).data)
    .filter((d) => typeof d.body === 'string')
    .map((d) => d.body);

test('a member removed by the owner should lose the room live on every node, and their older token should be refused', async () => {
  const [g1, g2] = [gateways[0], gateways[1]] as [RunningService, RunningService];
  const [owner, b, c] = ['owner', 'b', 'c'].map((u) => `${u}${iso.run}`) as [string, string, string];
  const room = String((await api(owner, 'POST', '/rooms', { name: 'r', memberIds: [b, c] })).json.id);
  const channel = `chat:${room}`;
  const tokenOf = async (user: string) =>
    (await api(user, 'GET', `/rooms/${room}/subscription-token`)).json.token as string;

  // B and C read the room on g1, the owner on g2.
  const bClient = await connect(g1, b);
  const cClient = await connect(g1, c);
  const ownerClient = await connect(g2, owner);
  const oldToken = await tokenOf(b);
  const ack = await subscribe(bClient, channel, oldToken);
  assert.equal(ack.op, 'ack');
  assert.equal((await subscribe(cClient, channel, await tokenOf(c))).op, 'ack');
  assert.equal((await subscribe(ownerClient, channel, await tokenOf(owner))).op, 'ack');
  await api(owner, 'POST', `/rooms/${room}/messages`, { body: 'before' });
  await bClient.frame((f) => f.op === 'event' && f.channel === channel && bodies(bClient, channel).includes('before'));

  assert.equal((await api(owner, 'DELETE', `/rooms/${room}/members/${b}`)).status, 204);
  const revoked = await bClient.frame((f) => f.op === 'unsubscribed');
  assert.deepEqual([revoked.channel, revoked.code], [channel, 'GW_SUBSCRIPTION_REVOKED']);
  assert.equal(typeof revoked.message, 'string');

  await api(owner, 'POST', `/rooms/${room}/messages`, { body: 'after' });
  // C reads the room on B's node: once C has the message, B would have had it too.
  await waitUntil('C got the message', 20_000, () => bodies(cClient, channel).includes('after'));
  await waitUntil('the owner got the message', 20_000, () => bodies(ownerClient, channel).includes('after'));
  assert.deepEqual(bodies(bClient, channel), ['before']);
  const afterRevocation = bClient.frames.slice(bClient.frames.indexOf(revoked) + 1);
  assert.deepEqual(
    afterRevocation.filter((f) => f.channel === channel),
    [],
    'nothing of the room after the revocation',
  );

  // The token signed before the removal proves nothing any more: live, with `since`, or over SSE.
  const again = await connect(g2, b);
  const refused = await subscribe(again, channel, oldToken, { offset: ack.offset, epoch: ack.epoch });
  assert.deepEqual([refused.op, refused.code], ['error', 'GW_SUBSCRIBE_FORBIDDEN']);
  assert.deepEqual(bodies(again, channel), [], 'nothing replayed');
  const sse = await fetch(
    `${g1.url}/sse?channels=${channel}&subscription_token=${oldToken}&access_token=${await signAccessToken(secret, b)}`,
  );
  assert.equal(sse.status, 403);
  assert.equal(((await sse.json()) as Json).code, 'GW_SUBSCRIBE_FORBIDDEN');

  // Rejoining works with a fresh token.
  await api(owner, 'POST', `/rooms/${room}/members`, { userId: b });
  const rejoined = await subscribe(again, channel, await tokenOf(b));
  assert.equal(rejoined.op, 'ack');
});

test('a drained node should hand presence over: no change for a user who reconnects elsewhere, one offline for a user who does not', async () => {
  const [g1] = gateways as [RunningService];
  // A long grace, for the mover to reconnect however loaded the machine (default 2 s).
  const drained = await spawnService('fanout-gateway', {
    ...gatewayEnv,
    NODE_ID: `g4-${iso.run}`,
    DRAIN_WINDOW_MS: '200',
    DRAIN_PRESENCE_GRACE_MS: '8000',
  });
  const [mover, leaver] = [`mover${iso.run}`, `leaver${iso.run}`];
  const of = (user: string, type: string) => presence.filter((e) => e.type === type && e.data.userId === user);
  const moving = await connect(drained, mover);
  const leaving = await connect(drained, leaver);
  await waitUntil('both online events', 20_000, () =>
    [mover, leaver].every((user) => of(user, 'presence.online').length === 1),
  );

  const exited = drained.stop('SIGTERM');
  await moving.frame((f) => f.op === 'reconnect', 10_000);
  await connect(g1, mover);
  await leaving.closed();
  assert.equal(await exited, 0);
  // It announced the leaver offline itself before it exited.
  await waitUntil('the presence topic read to its end', 10_000, async () => {
    const offsets = await admin.topicOffsets(presenceTopic);
    return offsets.reduce((sum, p) => sum + p.high, 0) === presence.length;
  });
  assert.deepEqual(
    of(leaver, 'presence.offline').map((e) => e.data.nodeId),
    [`g4-${iso.run}`],
  );
  assert.deepEqual(
    [of(mover, 'presence.online').length, of(mover, 'presence.offline').length],
    [1, 0],
    'the mover stayed online throughout',
  );
});

test('a node claimed as dead while it stalled should announce its user online again when it resumes, and offline once more when it dies', async () => {
  const stalled = await spawnService('fanout-gateway', { ...gatewayEnv, NODE_ID: `g5-${iso.run}` });
  const user = `stalled${iso.run}`;
  const of = (type: string) => presence.filter((e) => e.type === type && e.data.userId === user);
  const client = await connect(stalled, user);
  await waitUntil('the online event', 20_000, () => of('presence.online').length === 1);

  // Stopped past its lease and the grace: a peer claims it and announces its user offline.
  stalled.process.kill('SIGSTOP');
  try {
    await waitUntil('a peer announcing the user offline', 20_000, () => of('presence.offline').length === 1);
  } finally {
    stalled.process.kill('SIGCONT');
  }
  await waitUntil(
    'the resumed node announcing the user online again',
    20_000,
    () => of('presence.online').length === 2,
  );
  client.send({ op: 'ping' });
  await client.frame((f) => f.op === 'pong', 10_000);

  // It registered its connection again: its death is announced like any other.
  await stalled.stop('SIGKILL');
  await waitUntil('the user announced offline once more', 20_000, () => of('presence.offline').length === 2);
});

test('SIGKILL of a node should get presence.offline published once for a user connected only there', async () => {
  const [g1, g2, x] = gateways as [RunningService, RunningService, RunningService];
  const user = `lonely${iso.run}`;
  const offlines = () => presence.filter((e) => e.type === 'presence.offline' && e.data.userId === user);
  await connect(x, user);
  await waitUntil('the online event', 20_000, () =>
    presence.some((e) => e.type === 'presence.online' && e.data.userId === user),
  );

  await x.stop('SIGKILL');
  const [first] = await waitFor('presence.offline for the user', 15_000, () =>
    offlines().length > 0 ? offlines() : undefined,
  );
  assert.equal(first?.data.nodeId, `g3-${iso.run}`);

  // Exactly once: both survivors swept again after the claim, and everything published was read.
  const sweeps = async (node: RunningService) => {
    const text = await (await fetch(`${node.url}/metrics`)).text();
    const m = /registry_operation_duration_seconds_count\{[^}]*operation="roster\.claimDead"[^}]*\} (\S+)/.exec(text);
    return Number(m?.[1] ?? 0);
  };
  const base = await Promise.all([sweeps(g1), sweeps(g2)]);
  await waitUntil('both survivors swept twice more', 10_000, async () => {
    const now = await Promise.all([sweeps(g1), sweeps(g2)]);
    return now.every((n, i) => n >= (base[i] ?? 0) + 2);
  });
  await waitUntil('the presence topic read to its end', 10_000, async () => {
    const offsets = await admin.topicOffsets(presenceTopic);
    return offsets.reduce((sum, p) => sum + p.high, 0) === presence.length;
  });
  assert.equal(offlines().length, 1);
});
