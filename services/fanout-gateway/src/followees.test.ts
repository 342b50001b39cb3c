import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { httpFolloweeSource } from './followees.js';

/** A real HTTP server on 127.0.0.1 answering with `handler`; counts the TCP connections it got. */
async function server(
  t: { after(fn: () => unknown): void },
  handler: (req: IncomingMessage, res: ServerResponse) => void,
) {
  const http = createServer(handler);
  let connections = 0;
  http.on('connection', () => (connections += 1));
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => http.close(resolve)));
  return { url: `http://127.0.0.1:${(http.address() as AddressInfo).port}`, connections: () => connections };
}

test('followee loads should send the user token and reuse kept-alive connections', async (t) => {
  const seen: string[] = [];
  const s = await server(t, (req, res) => {
    seen.push(`${req.method} ${req.url} ${req.headers.authorization}`);
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ids: ['b', 'c'] }));
  });
  const source = httpFolloweeSource(s.url, 5_000, 2);
  t.after(() => source.close());
  for (let i = 0; i < 5; i++) assert.deepEqual(await source.following('a', 'tok-a'), ['b', 'c']);
  const many = await Promise.all(Array.from({ length: 20 }, () => source.following('a', 'tok-a')));
  assert.equal(many.length, 20);
  assert.equal(seen[0], 'GET /me/following/ids Bearer tok-a');
  assert.equal(seen.length, 25);
  assert.ok(s.connections() <= 2, `${s.connections()} connections for 25 loads over a pool of 2`);
});

test('a followee load should fail with GW_FEED_UNAVAILABLE on an error status, a bad body or a timeout', async (t) => {
  let mode = 'status';
  const s = await server(t, (_req, res) => {
    if (mode === 'status') {
      res.statusCode = 500;
      res.end('{}');
    } else if (mode === 'body') {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ ids: [42] }));
    }
    // mode 'hang': never answers
  });
  const source = httpFolloweeSource(s.url, 200, 2);
  t.after(() => source.close());
  await assert.rejects(source.following('a', 't'), { code: 'GW_FEED_UNAVAILABLE', message: /answered 500/ });
  mode = 'body';
  await assert.rejects(source.following('a', 't'), { code: 'GW_FEED_UNAVAILABLE', message: /unexpected body/ });
  mode = 'hang';
  await assert.rejects(source.following('a', 't'), {
    code: 'GW_FEED_UNAVAILABLE',
    retriable: true,
    message: 'could not load the followed users: post-service did not answer within 200 ms',
  });
});

test('a followee load should say that post-service could not be reached when nothing listens', async (t) => {
  const closed = createServer();
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const port = (closed.address() as AddressInfo).port;
  await new Promise((resolve) => closed.close(resolve));
  const source = httpFolloweeSource(`http://127.0.0.1:${port}`, 2_000, 1);
  t.after(() => source.close());
  await assert.rejects(source.following('a', 't'), {
    code: 'GW_FEED_UNAVAILABLE',
    retriable: true,
    message: 'could not load the followed users: post-service could not be reached (ECONNREFUSED)',
  });
});
