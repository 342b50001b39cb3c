import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { cleanupAll, freePort, testInfra, waitUntil } from '@ripple/testing';
import { callApi, isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// A domain service starts without Redis as it starts without Kafka: it listens, /readyz names
// redis until Redis answers, and rate limiting lets requests pass meanwhile. It exited at start
// ("failed to start: Connection is closed").
const iso = isolatedRun('redisstart');
let service: RunningService | undefined;
let chat: RunningService | undefined;
let proxy: Server | undefined;
const piped = new Set<Socket>();

after(() =>
  cleanupAll(
    async () => {
      if (service) assert.equal(await service.stop(), 0, 'a clean exit on SIGTERM');
    },
    async () => {
      if (chat) assert.equal(await chat.stop(), 0, 'a clean exit on SIGTERM');
    },
    () => {
      piped.forEach((s) => s.destroy());
      return new Promise<void>((resolve) => (proxy ? proxy.close(() => resolve()) : resolve()));
    },
    () => iso.cleanup(),
  ),
);

/** Starts forwarding `port` to the shared Redis: Redis "comes up" there. */
function forwardToRedis(port: number): Promise<Server> {
  const redis = new URL(testInfra.redisUrl);
  const server = createServer((client) => {
    const upstream = connect(Number(redis.port || 6379), redis.hostname);
    for (const s of [client, upstream]) {
      piped.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => piped.delete(s));
    }
    client.pipe(upstream).pipe(client);
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)));
}

test('a domain service whose Redis does not answer should start, be not ready naming redis, take writes, and be ready once Redis answers', async () => {
  // Nothing listens there yet.
  const port = await freePort();
  service = await spawnService('post-service', {
    ...iso.env,
    REDIS_URL: `redis://127.0.0.1:${port}`,
    DATABASE_URL: iso.databaseUrl('post-service'),
  });
  const notReady = await callApi(service, 'GET', '/readyz');
  assert.deepEqual(
    [notReady.status, notReady.json().code, notReady.json().message],
    [503, 'NOT_READY', 'failing checks: redis'],
  );
  // Rate limiting counts in Redis; while Redis is away, requests pass unlimited rather than fail.
  const token = await signAccessToken(jwtSecret(iso.jwtSecretText), `r${iso.run}`);
  const created = await callApi(service, 'POST', '/posts', { token, body: { body: 'while Redis is away' } });
  assert.equal(created.status, 201, created.text);

  proxy = await forwardToRedis(port);
  await waitUntil('the service to be ready', 20_000, async () => (await fetch(`${service?.url}/readyz`)).ok);
});

test('typing indicators should be published, unthrottled, while Redis does not answer, not fail with 500', async () => {
  // The throttle keeps its marks in Redis; its failure answered 500 INTERNAL. Like rate limits,
  // it lets requests pass while Redis is away.
  chat = await spawnService('chat-service', {
    ...iso.env,
    REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
    DATABASE_URL: iso.databaseUrl('chat-service'),
  });
  const token = await signAccessToken(jwtSecret(iso.jwtSecretText), `t${iso.run}`);
  const room = await callApi(chat, 'POST', '/rooms', { token, body: { name: 'no redis' } });
  assert.equal(room.status, 201, room.text);
  const roomId = room.json<{ id: string }>().id;
  for (let i = 0; i < 2; i++) {
    const typing = await callApi(chat, 'POST', `/rooms/${roomId}/typing`, { token });
    assert.equal(typing.status, 202, typing.text);
  }
});
