import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Type } from '@sinclair/typebox';
import { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import type { FastifyInstance } from 'fastify';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { cleanupAll, deleteKeys, OpenApiContract, rawHttp, runId, testInfra } from '@ripple/testing';
import { createApiApp } from './api.js';
import { requireUser } from './auth.js';
import { routeSchema } from './contract.js';
import { listeningPort } from './health.js';

// Fastify's and Node's own refusals (the router, the body parser, the HTTP parser), sent over TCP
// to a listening API app: each answer has the shared error body and a status that the served
// /docs/json declares, for the operation or for any request (x-global-responses).

const redis = new Redis(testInfra.redisUrl);
const prefix = `test:${runId()}:`;
let app: FastifyInstance;
let base: string;
let contract: OpenApiContract;
let authorization: string;
const SECRET = 'builtin-errors-secret-0123456789';

before(async () => {
  app = await createApiApp({
    name: 'builtin-errors-test',
    description: 'test',
    logger: createLogger('builtin-errors-test', 'silent'),
    metrics: createMetricsRegistry('builtin-errors-test'),
    checks: {},
    jwt: { verification: { algorithm: 'HS256', secret: SECRET } },
    redis,
    redisKeyPrefix: prefix,
    rateLimit: { max: 1000, windowMs: 60_000 },
    bodyLimit: 1024,
  });
  const params = Type.Object({ thingId: Type.String({ minLength: 1, maxLength: 128 }) });
  const Thing = Type.Object({ name: Type.String() }, { additionalProperties: false });
  app.post(
    '/things/:thingId',
    {
      onRequest: requireUser,
      schema: routeSchema({
        tag: 'things',
        summary: 'Makes a thing.',
        params,
        body: Thing,
        success: { status: 201, description: 'made', body: Thing },
        idempotent: true,
      }),
    },
    (request, reply) => reply.status(201).send(request.body),
  );
  app.delete(
    '/things/:thingId',
    {
      onRequest: requireUser,
      schema: routeSchema({
        tag: 'things',
        summary: 'Removes a thing.',
        params,
        success: { status: 204, description: 'gone', body: null },
        idempotent: true,
      }),
    },
    (_request, reply) => reply.status(204).send(),
  );
  await app.listen({ host: '127.0.0.1', port: 0 });
  base = `http://127.0.0.1:${listeningPort(app)}`;
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('u1')
    .setExpirationTime('10m')
    .sign(new TextEncoder().encode(SECRET));
  authorization = `Bearer ${token}`;
  contract = await OpenApiContract.load(await (await fetch(`${base}/docs/json`)).json());
});

after(() =>
  cleanupAll(
    () => app?.close(),
    () => deleteKeys(redis, `${prefix}*`),
    () => redis.disconnect(),
  ),
);

/** Sends the request, checks the answer against the served document and returns status and body. */
async function send(method: string, path: string, init: { headers?: Record<string, string>; body?: string } = {}) {
  const res = await fetch(`${base}${path}`, { method, ...init, headers: { authorization, ...init.headers } });
  const body = await res.text();
  contract.check({
    method,
    url: path,
    status: res.status,
    contentType: res.headers.get('content-type') ?? undefined,
    body,
    headers: Object.fromEntries(res.headers),
  });
  return { status: res.status, body: JSON.parse(body) as Record<string, unknown> };
}

/** Writes `raw` on a fresh TCP connection and reads the answer until the server closes it. */
const sendRaw = (raw: string) => rawHttp(listeningPort(app), raw);

const json = { 'content-type': 'application/json' };
const shape = (body: Record<string, unknown>) =>
  Object.keys(body).filter((k) => !['code', 'message', 'field'].includes(k));

test('a path parameter past its schema but within any URL limit should be 400 VALIDATION_FAILED naming it', async () => {
  const { status, body } = await send('DELETE', `/things/${'t'.repeat(600)}`);
  assert.deepEqual([status, body.code, body.field], [400, 'VALIDATION_FAILED', 'params.thingId']);
});

test('a URL over Node’s 16 KiB header limit should be 431 REQUEST_HEADERS_TOO_LARGE in the shared shape', async () => {
  const { status, body } = await send('DELETE', `/things/${'t'.repeat(17_000)}`);
  assert.deepEqual([status, body.code, shape(body)], [431, 'REQUEST_HEADERS_TOO_LARGE', []]);
});

test('an Expect Node cannot meet should be 417 EXPECTATION_FAILED in the shared shape (Node answered with no body)', async () => {
  const answer = await sendRaw('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: foo\r\n\r\n');
  assert.equal(answer.status, 417);
  assert.match(answer.contentType ?? '', /application\/json/);
  assert.equal((JSON.parse(answer.body) as { code: string }).code, 'EXPECTATION_FAILED');
});

test('a URL that is not valid percent-encoding should be 400 FST_ERR_BAD_URL in the shared shape', async () => {
  for (const path of ['/things/%zz', '/nothing/%E0%A4%A']) {
    const { status, body } = await send('DELETE', path);
    assert.deepEqual([status, body.code, shape(body)], [400, 'FST_ERR_BAD_URL', []], path);
  }
});

test('body errors should be declared and in the shared shape, and a body sent to a route without one refused', async () => {
  const cases: [string, Record<string, string>, string, number, string][] = [
    ['POST', json, '{"name":', 400, 'FST_ERR_CTP_INVALID_JSON_BODY'],
    ['POST', json, '', 400, 'FST_ERR_CTP_EMPTY_JSON_BODY'],
    ['POST', json, JSON.stringify({ name: 'x'.repeat(2000) }), 413, 'FST_ERR_CTP_BODY_TOO_LARGE'],
    ['POST', { 'content-type': 'text/xml' }, '<thing/>', 415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE'],
    ['POST', { 'content-type': 'application/x-www-form-urlencoded' }, 'name=x', 415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE'],
    ['DELETE', json, '{"name":"x"}', 400, 'BODY_NOT_ALLOWED'],
    ['DELETE', json, '{"name":', 400, 'BODY_NOT_ALLOWED'],
    ['DELETE', { 'content-type': 'text/xml' }, '<thing/>', 400, 'BODY_NOT_ALLOWED'],
    ['DELETE', json, 'x'.repeat(2000), 400, 'BODY_NOT_ALLOWED'],
  ];
  for (const [method, headers, body, status, code] of cases) {
    const answer = await send(method, '/things/t1', { headers, body });
    assert.deepEqual([answer.status, answer.body.code, shape(answer.body)], [status, code, []], `${method} ${code}`);
  }
});

test('an unknown route or a method a path does not have should be 404 NOT_FOUND (no 405)', async () => {
  for (const [method, path] of [
    ['GET', '/nothing'],
    ['PATCH', '/things/t1'],
    ['PUT', '/healthz'],
    ['PROPFIND', '/things/t1'],
  ] as const) {
    const { status, body } = await send(method, path);
    assert.deepEqual([status, body.code, shape(body)], [404, 'NOT_FOUND', []], `${method} ${path}`);
  }
});

test('an HTTP request the parser refuses should be 400 REQUEST_MALFORMED in the shared shape', async () => {
  for (const raw of ['GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', 'NOT-HTTP\r\n\r\n']) {
    const answer = await sendRaw(raw);
    contract.check({ method: 'GET', url: '/healthz', ...answer });
    const body = JSON.parse(answer.body) as Record<string, unknown>;
    assert.deepEqual([answer.status, body.code, shape(body)], [400, 'REQUEST_MALFORMED', []], JSON.stringify(raw));
  }
});

test('an HTTP/1.1 request without Host should be 400 REQUEST_MALFORMED naming the header (Node answered with no body)', async () => {
  for (const path of ['/healthz', '/nothing']) {
    const answer = await sendRaw(`GET ${path} HTTP/1.1\r\nConnection: close\r\n\r\n`);
    contract.check({ method: 'GET', url: path, ...answer });
    const body = JSON.parse(answer.body) as Record<string, unknown>;
    assert.deepEqual([answer.status, body.code, body.field], [400, 'REQUEST_MALFORMED', 'headers.host'], path);
  }
  // HTTP/1.0 has no Host requirement: such a request is served.
  assert.equal((await sendRaw('GET /healthz HTTP/1.0\r\n\r\n')).status, 200);
});

test('a request whose body the parser refuses after the route answered should get that one answer, not a second', async () => {
  // Transfer-Encoding without chunked last: Node hands the request on, then fails on its body.
  for (const [raw, status, code] of [
    ['GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc', 400, 'BODY_NOT_ALLOWED'],
    ['POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc', 404, 'NOT_FOUND'],
  ] as const) {
    const answer = await sendRaw(raw);
    assert.doesNotMatch(answer.body, /HTTP\/1\.1/, `one answer to ${JSON.stringify(raw)}`);
    contract.check({ method: raw.split(' ')[0] ?? '', url: '/healthz', ...answer });
    assert.deepEqual([answer.status, (JSON.parse(answer.body) as { code: string }).code], [status, code]);
  }
});

test('no method should be served on a documented path that the document does not list (HEAD, OPTIONS, ...)', async () => {
  for (const { method, url } of contract.undocumentedMethods()) {
    // node:http, since fetch refuses TRACE.
    const answer = await new Promise<{ status: number; contentType: string | undefined; body: string }>(
      (resolve, reject) => {
        const req = request(`${base}${url}`, { method, headers: { authorization } }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: res.headers['content-type'], body }));
        });
        req.on('error', reject);
        req.end();
      },
    );
    contract.check({ method, url, ...answer });
    assert.equal(answer.status, 404, `${method} ${url}`);
  }
});

test('the operational routes should be documented, with their answers', async () => {
  assert.equal((await send('GET', '/healthz')).status, 200);
  assert.equal((await send('GET', '/readyz')).status, 200);
  const metrics = await fetch(`${base}/metrics`);
  contract.check({
    method: 'GET',
    url: '/metrics',
    status: metrics.status,
    contentType: metrics.headers.get('content-type') ?? undefined,
    body: await metrics.text(),
  });
});
