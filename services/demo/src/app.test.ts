import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jwtSecret, verifyAccessToken } from '@ripple/auth';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { buildDemoApp } from './app.js';
import type { DemoDeps } from './app.js';

const secret = jwtSecret('demo-test-secret-0123456789');

function demo(overrides: Partial<DemoDeps> = {}) {
  return buildDemoApp({
    logger: createLogger('demo', 'silent'),
    registry: createMetricsRegistry('demo'),
    devSecret: secret,
    script: 'console.log("app")',
    gatewayUrl: 'ws://gateway.test/ws',
    // Nothing listens there: these tests never reach the proxied routes.
    upstreams: { posts: 'http://127.0.0.1:9', chat: 'http://127.0.0.1:9', notifications: 'http://127.0.0.1:9' },
    ...overrides,
  });
}

test('the demo should serve its page, its bundle and the gateway URL', async (t) => {
  const app = await demo();
  t.after(() => app.close());
  const page = await app.inject('/');
  assert.equal(page.statusCode, 200);
  assert.match(page.body, /<script type="module" src="\/app.js">/);
  const script = await app.inject('/app.js');
  assert.equal(script.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(script.body, 'console.log("app")');
  assert.deepEqual((await app.inject('/api/config')).json(), { gatewayUrl: 'ws://gateway.test/ws' });
});

test('the token route should sign a development token for a valid user id and refuse others with a code', async (t) => {
  const app = await demo();
  t.after(() => app.close());
  const ok = await app.inject('/api/token?user=u42');
  assert.equal(ok.statusCode, 200);
  assert.equal((await verifyAccessToken(secret, ok.json<{ token: string }>().token)).sub, 'u42');
  for (const query of ['', '?user=', '?user=bad%20id', '?user=u1&admin=true']) {
    const refused = await app.inject(`/api/token${query}`);
    assert.equal(refused.statusCode, 400, query);
    assert.equal(refused.json<{ code: string }>().code, 'VALIDATION_FAILED', query);
  }
});

test('the token route should refuse in production', async (t) => {
  const app = await demo({ devSecret: undefined });
  t.after(() => app.close());
  const refused = await app.inject('/api/token?user=u42');
  assert.equal(refused.statusCode, 403);
  assert.equal(refused.json<{ code: string }>().code, 'DEMO_TOKENS_DISABLED');
});
