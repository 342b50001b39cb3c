import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logLines } from '@ripple/testing';
import { createLogger } from './logger.js';
import { REDACTED } from './redact.js';

const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1MSJ9.c2lnbmF0dXJl';

function capture() {
  const { stream, lines } = logLines();
  return { lines, logger: createLogger('logger-test', 'info', stream) };
}

test('the logger should redact secret query parameters in req.url and keep the rest of it', () => {
  const { lines, logger } = capture();
  logger.info(
    { req: { method: 'GET', url: `/sse?channels=user:u1&access_token=${TOKEN}&subscription_token=${TOKEN}` } },
    'incoming request',
  );
  assert.equal(lines.length, 1);
  const line = JSON.parse(lines[0] as string) as { req: { url: string } };
  assert.equal(line.req.url, `/sse?channels=user:u1&access_token=${REDACTED}&subscription_token=${REDACTED}`);
});

test('the logger should redact the Authorization header', () => {
  const { lines, logger } = capture();
  logger.info({ req: { headers: { authorization: `Bearer ${TOKEN}`, accept: 'text/event-stream' } } }, 'headers');
  const line = JSON.parse(lines[0] as string) as { req: { headers: Record<string, string> } };
  assert.deepEqual(line.req.headers, { authorization: REDACTED, accept: 'text/event-stream' });
});

test('the logger should redact tokens an error message or stack echoes', () => {
  const { lines, logger } = capture();
  logger.child({ node: 'n1' }).error({ err: new Error(`bad url /ws?access_token=${TOKEN}`) }, 'request failed');
  assert.equal(lines.length, 1);
  assert.ok(!(lines[0] as string).includes(TOKEN), lines[0]);
  const line = JSON.parse(lines[0] as string) as { err: { message: string; stack: string } };
  assert.equal(line.err.message, `bad url /ws?access_token=${REDACTED}`);
  assert.match(line.err.stack, /access_token=REDACTED/);
});

test('the logger should leave lines without secrets unchanged', () => {
  const { lines, logger } = capture();
  logger.info({ req: { method: 'GET', url: '/posts?limit=20' }, port: 8080 }, 'listening');
  const line = JSON.parse(lines[0] as string) as { req: { url: string }; port: number; msg: string };
  assert.equal(line.req.url, '/posts?limit=20');
  assert.equal(line.port, 8080);
  assert.equal(line.msg, 'listening');
});

test('the logger should redact tokens in any top-level field and in the message, as a library may log a URL', () => {
  const { lines, logger } = capture();
  logger.info({ path: `/sse?access_token=${TOKEN}` }, `closed /sse?channels=a&subscription_token=${TOKEN}`);
  logger.info(`Authorization: Bearer ${TOKEN}`);
  assert.equal(lines.length, 2);
  assert.ok(!lines.join('\n').includes(TOKEN), lines.join('\n'));
  const first = JSON.parse(lines[0] as string) as { path: string; msg: string };
  assert.equal(first.path, `/sse?access_token=${REDACTED}`);
  assert.equal(first.msg, `closed /sse?channels=a&subscription_token=${REDACTED}`);
});
