import { test } from 'node:test';
import assert from 'node:assert/strict';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import type { OutboxMessage } from '@ripple/events';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { buildApp } from './app.js';
import type { Post } from './posts.js';

const secret = jwtSecret('unit-test-secret-long-enough');

function appWithMemoryStore() {
  const rows: { post: Post; event: OutboxMessage }[] = [];
  let woken = 0;
  const app = buildApp({
    store: {
      insertWithEvent: (post, event) => {
        rows.push({ post, event });
        return Promise.resolve();
      },
    },
    now: () => new Date('2026-11-21T10:00:00.000Z'),
    afterCommit: () => (woken += 1),
    jwtSecret: secret,
    logger: createLogger('post-service-test', 'silent'),
    metrics: createMetricsRegistry('post-service-test'),
    checks: {},
  });
  return { app, rows, woken: () => woken };
}

test('POST /posts should store the post with its post.created event and wake the relay', async () => {
  const { app, rows, woken } = appWithMemoryStore();
  const res = await app.inject({
    method: 'POST',
    url: '/posts',
    headers: {
      authorization: `Bearer ${await signAccessToken(secret, 'u7')}`,
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
    },
    payload: { body: 'hi' },
  });
  assert.equal(res.statusCode, 201);
  const body = res.json<{ id: string; eventId: string; authorId: string; createdAt: string }>();
  assert.equal(body.authorId, 'u7');
  assert.equal(body.createdAt, '2026-11-21T10:00:00.000Z');
  assert.equal(rows.length, 1);
  const stored = rows[0];
  assert.equal(stored?.event.eventId, body.eventId);
  assert.equal(stored?.event.topic, 'post.events.v1');
  assert.equal(stored?.event.key, body.id);
  assert.equal(stored?.event.headers.ce_type, 'post.created');
  assert.equal(stored?.event.headers.traceparent, '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01');
  assert.equal(woken(), 1);
});

test('POST /posts should answer 401 with a code for a missing or forged token, before validating the body', async () => {
  const { app, rows } = appWithMemoryStore();
  const missing = await app.inject({ method: 'POST', url: '/posts', payload: {} });
  assert.equal(missing.statusCode, 401);
  assert.equal(missing.json<{ code: string }>().code, 'AUTH_TOKEN_MISSING');
  const forged = await app.inject({
    method: 'POST',
    url: '/posts',
    headers: { authorization: `Bearer ${await signAccessToken(jwtSecret('someone-elses-secret!!'), 'u7')}` },
    payload: { body: 'x' },
  });
  assert.equal(forged.statusCode, 401);
  assert.equal(forged.json<{ code: string }>().code, 'AUTH_TOKEN_INVALID');
  assert.equal(rows.length, 0);
});

test('POST /posts should answer 400 naming the field for an invalid body', async () => {
  const { app, rows } = appWithMemoryStore();
  const auth = { authorization: `Bearer ${await signAccessToken(secret, 'u7')}` };
  const cases: [unknown, string][] = [
    [{}, 'body.body'],
    [{ body: '' }, 'body.body'],
    [{ body: 'x'.repeat(10_001) }, 'body.body'],
    [{ body: 'ok', extra: 1 }, 'body'],
    [{ body: { text: 'x' } }, 'body.body'],
  ];
  for (const [payload, field] of cases) {
    const res = await app.inject({ method: 'POST', url: '/posts', headers: auth, payload: payload as object });
    assert.equal(res.statusCode, 400, JSON.stringify(payload));
    assert.deepEqual(
      { code: res.json<{ code: string }>().code, field: res.json<{ field: string }>().field },
      { code: 'VALIDATION_FAILED', field },
    );
  }
  const notJson = await app.inject({
    method: 'POST',
    url: '/posts',
    headers: { ...auth, 'content-type': 'application/json' },
    payload: '{oops',
  });
  assert.equal(notJson.statusCode, 400);
  assert.equal(notJson.json<{ code: string }>().code, 'FST_ERR_CTP_INVALID_JSON_BODY');
  assert.equal(rows.length, 0);
});

test('unknown routes should answer 404 with a code', async () => {
  const { app } = appWithMemoryStore();
  const res = await app.inject({ method: 'GET', url: '/nope' });
  assert.equal(res.statusCode, 404);
  assert.equal(res.json<{ code: string }>().code, 'NOT_FOUND');
});
