import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { assertPromtoolAccepts, cleanupAll, waitFor } from '@ripple/testing';
import { callApi, connectClient, isolatedRun, spawnService } from './harness.js';
import type { RunningService, TestClient } from './harness.js';

// The three domain services, the notification consumer and the gateway as real processes on real
// Kafka, Redis and PostgreSQL: what one user does reaches the other as a live notification.
const iso = isolatedRun('dom');
const secret = jwtSecret(iso.jwtSecretText);
const services: Record<'gateway' | 'post' | 'chat' | 'notification', RunningService> = {} as never;
const clients: TestClient[] = [];
const A = `a${iso.run}`;
const B = `b${iso.run}`;

before(async () => {
  const domain = (name: string) => ({
    ...iso.env,
    DATABASE_URL: iso.databaseUrl(name),
    OUTBOX_POLL_INTERVAL_MS: '200',
  });
  services.gateway = await spawnService('fanout-gateway', { ...iso.env, KAFKA_GROUP_ID: `dom.${iso.run}.gateway` });
  services.notification = await spawnService('notification-service', {
    ...domain('notification-service'),
    KAFKA_GROUP_ID: `dom.${iso.run}.notifications`,
  });
  services.post = await spawnService('post-service', domain('post-service'));
  services.chat = await spawnService('chat-service', domain('chat-service'));
});

after(() =>
  cleanupAll(
    ...clients.map((c) => () => c.close()),
    () => Promise.all(Object.values(services).map((s) => s.stop())),
    () => iso.cleanup(),
  ),
);

type Json = Record<string, unknown>;

async function api(service: RunningService, user: string, method: string, path: string, body?: Json) {
  const res = await callApi(service, method, path, { token: await signAccessToken(secret, user), body });
  assert.ok(res.status < 300, `${method} ${path} → ${res.status} ${res.text}`);
  return res.text === '' ? {} : res.json();
}

const connect = (user: string): Promise<TestClient> => connectClient(services.gateway, secret, user, clients);

const eventOf = (f: Json) => f.event as { type: string; data: Json };
const notifications = (client: TestClient, kind: string) =>
  client.frames.filter(
    (f) => f.op === 'event' && eventOf(f).type === 'notification.created' && eventOf(f).data.kind === kind,
  );

test('B commenting on A’s post should notify A live, and A’s unread count should become 1', async () => {
  const a = await connect(A);
  const post = await api(services.post, A, 'POST', '/posts', { body: 'my first post' });
  await api(services.post, B, 'POST', `/posts/${String(post.id)}/comments`, { body: 'welcome!' });

  const live = await a.frame((f) => f.op === 'event' && eventOf(f).type === 'notification.created', 30_000);
  assert.deepEqual(
    [eventOf(live).data.kind, eventOf(live).data.actorId, eventOf(live).data.subjectId],
    ['comment.created', B, post.id],
  );
  const count = await a.frame((f) => f.op === 'event' && eventOf(f).type === 'notification.unread_count');
  assert.deepEqual([eventOf(count).data.count, eventOf(count).data.generation], [1, 1]);
  assert.deepEqual(await api(services.notification, A, 'GET', '/notifications/unread-count'), {
    count: 1,
    generation: 1,
  });
  const list = await api(services.notification, A, 'GET', '/notifications');
  assert.deepEqual(
    (list.items as Json[]).map((n) => [n.kind, n.actorId]),
    [['comment.created', B]],
  );
});

test('a burst of 10 messages from B in a room with A should give A one notification', async () => {
  const a = await connect(A);
  const room = await api(services.chat, B, 'POST', '/rooms', { name: 'pair', memberIds: [A] });
  const roomId = String(room.id);
  // A also watches the room itself, with the membership proof chat-service signs.
  const { token } = await api(services.chat, A, 'GET', `/rooms/${roomId}/subscription-token`);
  a.send({ op: 'subscribe', id: 's1', channel: `chat:${roomId}`, token });
  await a.frame((f) => f.op === 'ack' && f.id === 's1');

  for (let i = 0; i < 10; i++) await api(services.chat, B, 'POST', `/rooms/${roomId}/messages`, { body: `m${i}` });
  const folded = await waitFor('the 10 messages folded into one notification', 30_000, async () => {
    const items = (await api(services.notification, A, 'GET', '/notifications?unread=true')).items as Json[];
    const chat = items.filter((n) => n.kind === 'chat.message' && n.subjectId === roomId);
    return chat.length === 1 && chat[0]?.count === 10 ? chat : undefined;
  });
  assert.equal(folded.length, 1);

  // A marker after the burst: notifications for A share a partition, so once the marker arrives,
  // every notification event for the burst has arrived too.
  const post = await api(services.post, A, 'POST', '/posts', { body: 'marker' });
  await api(services.post, B, 'POST', `/posts/${String(post.id)}/likes`);
  await a.frame(
    (f) => f.op === 'event' && eventOf(f).type === 'notification.created' && eventOf(f).data.kind === 'post.liked',
    30_000,
  );
  assert.equal(
    notifications(a, 'chat.message').filter((f) => eventOf(f).data.subjectId === roomId).length,
    1,
    'one live notification for the burst',
  );
  const messages = a.frames.filter((f) => f.op === 'event' && eventOf(f).type === 'chat.message.sent');
  assert.deepEqual(
    messages.map((f) => eventOf(f).data.body),
    Array.from({ length: 10 }, (_, i) => `m${i}`),
    'the room’s messages arrived live and in order',
  );
  assert.equal(notifications(a, 'chat.message').length, 1);
});

/** Prometheus text → the sum of every sample of `name` whose labels include `labels`. */
async function scrape(service: RunningService) {
  const text = await (await fetch(`${service.url}/metrics`)).text();
  const samples = text
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(l);
      return { name: m?.[1] ?? '', labels: m?.[2] ?? '', value: Number(m?.[3]) };
    });
  return (name: string, labels: Record<string, string> = {}) => {
    const matching = samples.filter(
      (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels.includes(`${k}="${v}"`)),
    );
    return matching.length === 0 ? undefined : matching.reduce((sum, s) => sum + s.value, 0);
  };
}

test('every process should expose its metrics on /metrics, and they should move with traffic', async () => {
  const all = [services.post, services.chat, services.notification, services.gateway];
  const before = await Promise.all(all.map(scrape));
  const a = await connect(A);
  a.send({ op: 'subscribe', id: 'x', channel: `user:${B}` }); // forbidden: counted by error code
  await a.frame((f) => f.op === 'error' && f.id === 'x');
  const post = await api(services.post, A, 'POST', '/posts', { body: 'metrics' });
  await api(services.post, B, 'POST', `/posts/${String(post.id)}/comments`, { body: 'counted' });
  const room = await api(services.chat, A, 'POST', '/rooms', { name: 'metrics' });
  // Each event has been published once it reached A's socket (the owner hears of the room).
  await a.frame(
    (f) => f.op === 'event' && eventOf(f).type === 'chat.room.created' && eventOf(f).data.roomId === room.id,
  );
  await a.frame(
    (f) => f.op === 'event' && eventOf(f).type === 'notification.created' && eventOf(f).data.subjectId === post.id,
  );

  const after = await Promise.all(all.map(scrape));
  const [post0, chat0, notif0, gw0] = before;
  const [post1, chat1, notif1, gw1] = after;
  const moved = (b: typeof post0, a1: typeof post0, name: string, labels?: Record<string, string>) =>
    assert.ok((a1?.(name, labels) ?? 0) > (b?.(name, labels) ?? 0), `${name} ${JSON.stringify(labels ?? {})} moved`);
  // Every process: HTTP durations by route and status.
  moved(post0, post1, 'http_request_duration_seconds_count', { route: '/posts', status_code: '201' });
  moved(chat0, chat1, 'http_request_duration_seconds_count', { route: '/rooms', status_code: '201' });
  moved(notif0, notif1, 'http_request_duration_seconds_count', { route: '/metrics' });
  moved(gw0, gw1, 'http_request_duration_seconds_count', { route: '/metrics' });
  // Events published and consumed by type; the outbox; consumer lag.
  moved(post0, post1, 'events_published_total', { type: 'post.created' });
  moved(post0, post1, 'outbox_publish_latency_seconds_count');
  moved(chat0, chat1, 'events_published_total', { type: 'chat.room.created' });
  moved(notif0, notif1, 'events_consumed_total', { type: 'comment.created', outcome: 'handled' });
  moved(notif0, notif1, 'events_published_total', { type: 'notification.created' });
  moved(gw0, gw1, 'events_consumed_total', { type: 'notification.created', outcome: 'handled' });
  // Commit → ack, per process: its group commit (the post) and transactions (the comment, the room),
  // and the consumer's (the notification) stamp the events they committed.
  await waitFor('commit → ack observed on every write path', 30_000, async () => {
    const [post2, chat2, notif2] = await Promise.all([services.post, services.chat, services.notification].map(scrape));
    const count = (m: typeof post0) => m?.('outbox_commit_to_ack_seconds_count') ?? 0;
    const grown = count(post2) - count(post0) >= 2 && count(chat2) > count(chat0) && count(notif2) > count(notif0);
    return grown ? true : undefined;
  });
  for (const m of [post1, chat1, notif1]) {
    assert.notEqual(m?.('outbox_backlog_rows'), undefined);
    assert.notEqual(m?.('outbox_oldest_unsent_age_seconds'), undefined);
  }
  assert.notEqual(notif1?.('kafka_consumer_lag_messages'), undefined);
  assert.notEqual(gw1?.('kafka_consumer_lag_messages'), undefined);
  // The gateway: connections, subscriptions, deliveries and their latency, errors by code, registry latency.
  assert.ok((gw1?.('gateway_connections') ?? 0) >= 1);
  assert.ok((gw1?.('gateway_subscriptions') ?? 0) >= 1);
  moved(gw0, gw1, 'gateway_deliveries_total');
  moved(gw0, gw1, 'gateway_delivery_latency_seconds_count');
  moved(gw0, gw1, 'gateway_errors_total', { code: 'GW_SUBSCRIBE_FORBIDDEN' });
  moved(gw0, gw1, 'registry_operation_duration_seconds_count', { operation: 'routes.appendAndLookup' });
  assert.notEqual(gw1?.('gateway_slow_consumer_closes_total'), undefined);

  // Every metric the Grafana dashboard queries is one that some process exposes.
  const dashboard = readFileSync(new URL('../../../infra/grafana/dashboards/ripple.json', import.meta.url), 'utf8');
  const queried = new Set(
    [...dashboard.matchAll(/\b([a-z][a-z0-9]*_[a-z0-9_]+)(?=[{[)])/g)].map((m) =>
      (m[1] ?? '').replace(/_(bucket|count|sum)$/, ''),
    ),
  );
  assert.ok(queried.size >= 10, [...queried].join(' '));
  for (const name of queried) {
    assert.ok(
      after.some((m) => m?.(name) !== undefined || m?.(`${name}_count`) !== undefined),
      `the dashboard's ${name} is exposed`,
    );
  }
});

test('every process’s /metrics should pass promtool check metrics', async () => {
  for (const service of [services.post, services.chat, services.notification, services.gateway]) {
    await assertPromtoolAccepts(service.name, await (await fetch(`${service.url}/metrics`)).text());
  }
});

test('every process’s /metrics should count its dropped log lines, none while stdout keeps up', async () => {
  for (const service of [services.post, services.chat, services.notification, services.gateway]) {
    assert.equal((await scrape(service))('log_lines_dropped_total'), 0, service.name);
  }
});

test('SIGTERM should stop every domain service cleanly, consumer and relay included (exit code 0)', async () => {
  const stopping = [services.post, services.chat, services.notification];
  assert.deepEqual(await Promise.all(stopping.map((s) => s.stop())), [0, 0, 0]);
  for (const s of stopping) assert.match(s.output(), /"msg":"stopped"/, s.name);
});
