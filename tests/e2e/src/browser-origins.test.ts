import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { cleanupAll } from '@ripple/testing';
import { TestClient, isolatedRun, openSse, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// A browser page of another origin reads /sse only when the answer allows its origin (CORS), and
// opens /ws only from an allowed origin when WS_ORIGINS is set. A real gateway, configured so.
const iso = isolatedRun('origins');
const secret = jwtSecret(iso.jwtSecretText);
const APP = 'http://app.example.test';
const EVIL = 'http://evil.example.test';
let gateway: RunningService;
let token: string;

before(async () => {
  gateway = await spawnService('fanout-gateway', {
    ...iso.env,
    NODE_ID: `origins-${iso.run}`,
    KAFKA_GROUP_ID: `origins.${iso.run}.gateway`,
    CORS_ORIGINS: `${APP}, http://other.example.test`,
    WS_ORIGINS: APP,
  });
  token = await signAccessToken(secret, `o${iso.run}`);
});

after(() =>
  cleanupAll(
    () => gateway?.stop(),
    () => iso.cleanup(),
  ),
);

test('/sse should allow a listed origin by CORS and give any other origin no CORS headers', async () => {
  const allowed = await openSse(`${gateway.url}/sse?channels=creator:c${iso.run}&access_token=${token}`, {
    origin: APP,
  });
  allowed.abort();
  assert.equal(allowed.status, 200);
  assert.equal(allowed.headers.get('access-control-allow-origin'), APP);

  const refused = await openSse(`${gateway.url}/sse?channels=creator:c${iso.run}&access_token=${token}`, {
    origin: EVIL,
  });
  refused.abort();
  assert.equal(refused.headers.get('access-control-allow-origin'), null);

  const preflight = await fetch(`${gateway.url}/sse`, {
    method: 'OPTIONS',
    headers: { origin: APP, 'access-control-request-method': 'GET', 'access-control-request-headers': 'last-event-id' },
  });
  assert.equal(preflight.status, 204);
  assert.equal(preflight.headers.get('access-control-allow-origin'), APP);
  assert.match(preflight.headers.get('access-control-allow-headers') ?? '', /last-event-id/);
});

test('/ws should refuse the upgrade from an origin outside WS_ORIGINS, and accept a listed one or none', async () => {
  const status = await new Promise<number>((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}/ws?access_token=${token}`, { origin: EVIL });
    socket.on('unexpected-response', (_request, response) => {
      resolve(response.statusCode ?? 0);
      socket.terminate();
    });
    socket.on('open', () => reject(new Error('the upgrade from a foreign origin succeeded')));
    socket.on('error', () => undefined);
  });
  assert.equal(status, 403);

  const origins: Record<string, string>[] = [{ origin: APP }, {}];
  for (const headers of origins) {
    const client = TestClient.connect(`ws://127.0.0.1:${gateway.port}/ws?access_token=${token}`, headers);
    await client.frame((f) => f.op === 'welcome');
    client.close();
  }
});
