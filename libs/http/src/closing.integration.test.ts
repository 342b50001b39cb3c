import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { Type } from '@sinclair/typebox';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import type { FastifyInstance } from 'fastify';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { cleanupAll, deleteKeys, OpenApiContract, runId, testInfra, waitFor } from '@ripple/testing';
import type { RawAnswer } from '@ripple/testing';
import { createApiApp } from './api.js';
import { requireUser } from './auth.js';
import { routeSchema } from './contract.js';
import { listeningPort } from './health.js';

// A request that reaches a listening API app while it closes (on a connection kept alive from
// before): fastify answered it with a bare 503 of its own shape, without Retry-After.

const redis = new Redis(testInfra.redisUrl);
const prefix = `test:${runId()}:`;
const SECRET = 'closing-test-secret-0123456789abc';
const RETRY_AFTER_S = 7;
let app: FastifyInstance;
let port: number;
let contract: OpenApiContract;
let authorization: string;
const sockets: Socket[] = [];

/** The request that is in flight when the server starts closing: it waits for `release`. */
let entered: () => void = () => undefined;
let release: () => void = () => undefined;

before(async () => {
  app = await createApiApp({
    name: 'closing-test',
    description: 'test',
    logger: createLogger('closing-test', 'silent'),
    metrics: createMetricsRegistry('closing-test'),
    checks: {},
    jwt: { verification: { algorithm: 'HS256', secret: SECRET } },
    redis,
    redisKeyPrefix: prefix,
    rateLimit: { max: 1000, windowMs: 60_000 },
    overload: { maxEventLoopDelayMs: 0, maxInFlight: 100, retryAfterSeconds: RETRY_AFTER_S },
  });
  const Thing = Type.Object({ name: Type.String() }, { additionalProperties: false });
  app.get(
    '/things/:thingId',
    {
      onRequest: requireUser,
      schema: routeSchema({
        tag: 'things',
        summary: 'Reads a thing, once the test lets it.',
        params: Type.Object({ thingId: Type.String() }),
        success: { status: 200, description: 'the thing', body: Thing },
      }),
    },
    async () => {
      const released = new Promise<void>((resolve) => (release = resolve));
      entered();
      await released;
      return { name: 'slow' };
    },
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  port = listeningPort(app);
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('u1')
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(SECRET));
  authorization = `Bearer ${token}`;
  contract = await OpenApiContract.load(await (await fetch(`http://127.0.0.1:${port}/docs/json`)).json());
});

after(() =>
  cleanupAll(
    () => sockets.forEach((s) => s.destroy()),
    () => app?.close(),
    () => deleteKeys(redis, `${prefix}*`),
    () => redis.disconnect(),
  ),
);

/**
 * One kept-alive TCP connection: `send` writes a request, `next` reads the next answer (framed
 * by its Content-Length).
 */
function keptAlive(): { send(raw: string): void; next(): Promise<RawAnswer> } {
  const socket = connect(port, '127.0.0.1');
  sockets.push(socket);
  socket.setEncoding('utf8');
  let text = '';
  let closed = false;
  let wake: () => void = () => undefined;
  socket.on('data', (chunk: string) => {
    text += chunk;
    wake();
  });
  socket.on('close', () => {
    closed = true;
    wake();
  });
  return {
    send: (raw) => socket.write(raw),
    async next() {
      for (;;) {
        const end = text.indexOf('\r\n\r\n');
        if (end >= 0) {
          const head = text.slice(0, end).split('\r\n');
          const headers = Object.fromEntries(
            head.slice(1).map((line) => {
              const colon = line.indexOf(':');
              return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()];
            }),
          );
          const length = Number(headers['content-length'] ?? 0);
          if (text.length >= end + 4 + length) {
            const body = text.slice(end + 4, end + 4 + length);
            text = text.slice(end + 4 + length);
            return { status: Number(head[0]?.split(' ')[1]), contentType: headers['content-type'], headers, body };
          }
        }
        if (closed) throw new Error(`the connection closed before a whole answer: ${JSON.stringify(text)}`);
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}

test('a request that arrives on a kept-alive connection while the server closes should be 503 DRAINING in the shared body, with Retry-After and Connection: close', async () => {
  const connection = keptAlive();
  const request = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${authorization}\r\n\r\n`;
  const inFlight = new Promise<void>((resolve) => (entered = resolve));
  connection.send(request('/things/t1'));
  await inFlight;
  const closed = app.close();
  await waitFor('the server to stop listening', 5_000, () => (app.server.listening ? undefined : true));
  release();
  const first = await connection.next();
  assert.equal(first.status, 200, 'the request in flight is finished');

  connection.send(request('/things/t2'));
  const answer = await connection.next();
  contract.check({ method: 'GET', url: '/things/t2', ...answer });
  const body = JSON.parse(answer.body) as Record<string, unknown>;
  assert.deepEqual([answer.status, body.code, Object.keys(body).sort()], [503, 'DRAINING', ['code', 'message']]);
  assert.equal(answer.headers['retry-after'], String(RETRY_AFTER_S));
  assert.equal(answer.headers['connection'], 'close');
  await closed;
});
