import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { logLines } from '@ripple/testing';
import { HttpErrors } from './error-kinds.js';
import { serviceShell } from './health.js';

const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1NDIifQ.c2VjcmV0LXNpZ25hdHVyZQ';

function shellWithCapturedLogs(t: { after(fn: () => Promise<void>): void }) {
  const { stream, lines } = logLines();
  const app = serviceShell({
    logger: createLogger('redaction-test', 'info', stream),
    metrics: createMetricsRegistry('redaction-test'),
    checks: {},
  });
  t.after(() => app.close());
  return { app, lines };
}

test('the request log should show the URL with its access and subscription tokens redacted', async (t) => {
  const { app, lines } = shellWithCapturedLogs(t);
  const res = await app.inject({
    url: `/healthz?access_token=${TOKEN}&subscription_token=${TOKEN}`,
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(res.statusCode, 200);
  const incoming = lines.map((l) => JSON.parse(l) as { msg: string; req?: { url: string } }).find((l) => l.req);
  assert.equal(incoming?.req?.url, '/healthz?access_token=REDACTED&subscription_token=REDACTED');
  for (const line of lines) assert.ok(!line.includes(TOKEN), line);
});

test('an unknown route should answer 404 without echoing the token of its URL', async (t) => {
  const { app, lines } = shellWithCapturedLogs(t);
  const res = await app.inject({ url: `/nowhere?channels=user:u42&access_token=${TOKEN}` });
  assert.equal(res.statusCode, 404);
  assert.deepEqual(res.json(), {
    code: 'NOT_FOUND',
    message: 'no route GET /nowhere?channels=user:u42&access_token=REDACTED',
  });
  for (const line of lines) assert.ok(!line.includes(TOKEN), line);
});

test('each request should be logged once, when answered, with its method, URL, status and time, but a 503', async (t) => {
  const { app, lines } = shellWithCapturedLogs(t);
  app.get('/busy', () => {
    throw HttpErrors.overloaded.error('over capacity: retry later');
  });
  await app.inject({ url: '/healthz' });
  await app.inject({ url: '/nowhere' });
  // A refused request is counted, not logged: a line each would cost what refusing saves.
  assert.equal((await app.inject({ url: '/busy' })).statusCode, 503);
  const requests = lines
    .map(
      (l) =>
        JSON.parse(l) as {
          msg: string;
          req?: { method: string; url: string };
          res?: { statusCode: number };
          responseTime?: number;
        },
    )
    .filter((l) => l.req !== undefined || l.res !== undefined);
  assert.deepEqual(
    requests.map((l) => [l.msg, l.req?.method, l.req?.url, l.res?.statusCode]),
    [
      ['request completed', 'GET', '/healthz', 200],
      ['request completed', 'GET', '/nowhere', 404],
    ],
  );
  for (const l of requests) assert.equal(typeof l.responseTime, 'number');
});
