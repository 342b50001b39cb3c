import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import { signAccessToken } from '@ripple/auth';
import { listeningPort } from '@ripple/http';
import { singleNodeApp, singleNodeGateway, unitSecret as secret } from './single-node.js';
import { acceptableUpgrade } from './upgrade.js';

const checks = {
  isDraining: () => false,
  originAllowed: (origin: string | undefined) => origin !== 'http://evil.test',
};
const upgrade = (method: string, url: string, headers: Record<string, string> = {}) =>
  ({ method, url, headers }) as unknown as IncomingMessage;

test('the upgrade fast path should take only what GET /ws accepts as it is', () => {
  assert.deepEqual(acceptableUpgrade(upgrade('GET', '/ws?access_token=abc'), checks), { access_token: 'abc' });
  assert.deepEqual(acceptableUpgrade(upgrade('GET', '/ws', { authorization: 'Bearer abc' }), checks), {});
  const routed = [
    upgrade('POST', '/ws?access_token=abc'),
    upgrade('GET', '/ws/?access_token=abc'),
    upgrade('GET', '/sse?access_token=abc'),
    upgrade('GET', '/ws?access_token='), // the schema wants a non-empty token
    upgrade('GET', '/ws?access_token=a&access_token=b'),
    upgrade('GET', '/ws?access_token=abc&x=1'), // a parameter GET /ws does not take
    upgrade('GET', '/ws?access_token=abc', { origin: 'http://evil.test' }),
  ];
  for (const request of routed) assert.equal(acceptableUpgrade(request, checks), undefined, request.url);
  assert.equal(
    acceptableUpgrade(upgrade('GET', '/ws?access_token=abc'), { ...checks, isDraining: () => true }),
    undefined,
  );
});

test('an accepted upgrade should skip fastify routing, and a refused one should get the shared error body', async (t) => {
  const app = await singleNodeApp(t, singleNodeGateway());
  const routedUrls: string[] = [];
  app.addHook('onRequest', (request, _reply, done) => {
    routedUrls.push(request.url.split('?')[0] ?? '');
    done();
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `ws://127.0.0.1:${listeningPort(app)}/ws?access_token=${await signAccessToken(secret, 'u1')}`;

  const socket = new WebSocket(url, { origin: 'http://app.test' });
  const welcome = await new Promise<Record<string, unknown>>((resolve, reject) => {
    socket.once('message', (data: Buffer) => resolve(JSON.parse(data.toString()) as Record<string, unknown>));
    socket.once('error', reject);
  });
  assert.equal(welcome.op, 'welcome');
  assert.equal(welcome.user, 'u1');
  assert.deepEqual(routedUrls, [], 'the accepted upgrade made no fastify request');
  socket.close();

  const refused = new WebSocket(url, { origin: 'http://evil.test' });
  const answer = await new Promise<{ status: number; body: unknown }>((resolve, reject) => {
    refused.once('unexpected-response', (_request, response) => {
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }));
    });
    refused.once('open', () => reject(new Error('the upgrade from a foreign origin succeeded')));
  });
  assert.equal(answer.status, 403);
  assert.equal((answer.body as { code: string }).code, 'GW_ORIGIN_FORBIDDEN');
  assert.deepEqual(routedUrls, ['/ws'], 'the refused upgrade went through the route');

  // Only /ws speaks WebSocket: an upgrade elsewhere is the shared 404, not a 101 that hangs up.
  for (const path of ['/healthz', '/sse', '/nowhere']) {
    const elsewhere = new WebSocket(url.replace('/ws?', `${path}?`));
    const notFound = await new Promise<{ status: number; body: unknown }>((resolve, reject) => {
      elsewhere.once('unexpected-response', (_request, response) => {
        let text = '';
        response.on('data', (chunk: Buffer) => (text += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }));
      });
      elsewhere.once('open', () => reject(new Error(`an upgrade to ${path} succeeded`)));
    });
    assert.equal(notFound.status, 404, path);
    assert.equal((notFound.body as { code: string }).code, 'NOT_FOUND', path);
  }
});

test('a WebSocket set-up should be timed in gateway_connection_setup_seconds, each phase once, the registration included', async (t) => {
  // Registration takes a while (as a Redis round trip does under load): `register` and `total` hold it.
  const g = singleNodeGateway({ setupDelayMs: 50 });
  const app = await singleNodeApp(t, g);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const socket = new WebSocket(
    `ws://127.0.0.1:${listeningPort(app)}/ws?access_token=${await signAccessToken(secret, 'u1')}`,
  );
  t.after(() => socket.terminate());
  await new Promise<void>((resolve, reject) => {
    socket.once('message', () => resolve());
    socket.once('error', reject);
  });
  const { values } = await g.metrics.connectionSetup.get();
  const of = (phase: string, suffix: string, le?: number) =>
    values.find(
      (v) =>
        v.metricName === `gateway_connection_setup_seconds${suffix}` &&
        v.labels.phase === phase &&
        (v.labels as { le?: number }).le === le,
    )?.value;
  for (const phase of ['request', 'verify', 'register', 'total'])
    assert.equal(of(phase, '_count'), 1, `one ${phase} phase`);
  assert.equal(of('register', '_bucket', 0.025), 0, 'the registration waited its 50 ms');
  assert.equal(of('total', '_bucket', 0.025), 0, 'and the set-up as a whole with it');
});
