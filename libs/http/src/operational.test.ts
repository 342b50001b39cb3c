import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { OpenApiContract, logLines } from '@ripple/testing';
import type { ReadinessCheck } from './health.js';
import { serviceShell } from './health.js';

// The operational routes of every process (serviceShell), answered through app.inject and checked
// against the /docs/json the same app serves.

interface Shell {
  readonly app: FastifyInstance;
  /** The log lines written so far, parsed. */
  /** What the shell logged so far, one parsed pino line each. */
  readonly logs: () => { level: number; msg: string; [field: string]: unknown }[];
  /** Sends the request and checks the answer against the served OpenAPI document. */
  readonly call: (
    method: string,
    url: string,
    init?: { headers?: Record<string, string>; payload?: string },
  ) => Promise<Answer>;
}

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly headers: Record<string, unknown>;
}

function shell(
  t: { after(fn: () => Promise<void>): void },
  opts: { checks?: Record<string, ReadinessCheck>; isDraining?: () => boolean } = {},
): Shell {
  const { stream, lines } = logLines();
  const app = serviceShell({
    logger: createLogger('operational-test', 'info', stream),
    metrics: createMetricsRegistry('operational-test'),
    checks: opts.checks ?? {},
    ...(opts.isDraining && { isDraining: opts.isDraining }),
    openapi: { title: 'operational-test', description: 'test' },
  });
  t.after(() => app.close());
  let contract: Promise<OpenApiContract> | undefined;
  return {
    app,
    logs: () => lines.map((line) => JSON.parse(line) as ReturnType<Shell['logs']>[number]),
    async call(method, url, init = {}) {
      contract ??= app.inject({ method: 'GET', url: '/docs/json' }).then((doc) => OpenApiContract.load(doc.json()));
      const res = await app.inject({ method: method as 'GET', url, ...init });
      const contentType = res.headers['content-type'];
      (await contract).check({
        method,
        url,
        status: res.statusCode,
        contentType: typeof contentType === 'string' ? contentType : undefined,
        body: res.body,
        headers: res.headers,
      });
      return { status: res.statusCode, body: res.body, headers: res.headers };
    },
  };
}

const refused =
  (reason: string): ReadinessCheck =>
  () =>
    Promise.reject(new Error(reason));
const LEAKY = 'connect ECONNREFUSED 10.20.30.40:5432 (postgresql://ripple:s3cr3t@db.internal:5432/posts)';

test('/readyz should answer 200 with every check ok when every dependency answers', async (t) => {
  const { call } = shell(t, { checks: { postgres: () => Promise.resolve(), redis: () => Promise.resolve() } });
  const answer = await call('GET', '/readyz');
  assert.equal(answer.status, 200);
  assert.deepEqual(JSON.parse(answer.body), { status: 'ready', checks: { postgres: 'ok', redis: 'ok' } });
});

test('/readyz should answer a failed check with 503 NOT_READY naming it, and no host, port or credentials', async (t) => {
  const { call, logs } = shell(t, { checks: { postgres: refused(LEAKY), redis: () => Promise.resolve() } });
  const answer = await call('GET', '/readyz');
  assert.equal(answer.status, 503);
  assert.deepEqual(JSON.parse(answer.body), { code: 'NOT_READY', message: 'failing checks: postgres' });
  for (const leak of ['10.20.30.40', '5432', 's3cr3t', 'db.internal', 'ECONNREFUSED']) {
    assert.ok(!answer.body.includes(leak), leak);
  }
  const line = logs().find((l) => l.msg === 'readiness check failed');
  assert.equal(line?.level, 40, 'the reason is logged at warn');
  assert.equal(line.check, 'postgres');
  assert.match(JSON.stringify(line.err), /ECONNREFUSED/);
});

test('/readyz should answer 503 DRAINING while the process drains', async (t) => {
  const { call } = shell(t, { checks: { redis: () => Promise.resolve() }, isDraining: () => true });
  const answer = await call('GET', '/readyz');
  assert.deepEqual(
    [answer.status, JSON.parse(answer.body)],
    [503, { code: 'DRAINING', message: 'the process is shutting down' }],
  );
});

test('an expected refusal (503 NOT_READY, DRAINING) should be logged at info, never as an error', async (t) => {
  const unready = shell(t, { checks: { postgres: refused(LEAKY) } });
  const draining = shell(t, { isDraining: () => true });
  assert.equal((await unready.call('GET', '/readyz')).status, 503);
  assert.equal((await draining.call('GET', '/readyz')).status, 503);
  for (const [name, logs, code] of [
    ['unready', unready.logs(), 'NOT_READY'],
    ['draining', draining.logs(), 'DRAINING'],
  ] as const) {
    assert.deepEqual(
      logs.filter((l) => l.level >= 50),
      [],
      `${name}: no line at error`,
    );
    assert.equal(logs.find((l) => l.msg === 'request refused')?.code, code, name);
  }
});

test('every method a documented path does not list should be refused as the document says (no HEAD twin of a GET)', async (t) => {
  const { app, call } = shell(t);
  const contract = await OpenApiContract.load((await app.inject({ method: 'GET', url: '/docs/json' })).json());
  const probes = contract.undocumentedMethods();
  assert.ok(probes.some((p) => p.method === 'HEAD' && p.url === '/healthz'));
  for (const { method, url } of probes) assert.equal((await call(method, url)).status, 404, `${method} ${url}`);
});

test('a framework refusal should be declared by the operation it reaches, not only as a global response', async (t) => {
  const { call } = shell(t);
  const answer = await call('GET', '/readyz/%zz');
  assert.equal(answer.status, 400);
  const doc = (await shell(t).app.inject({ method: 'GET', url: '/docs/json' })).json<{
    paths: Record<string, Record<string, { responses: Record<string, { content?: unknown }> }>>;
  }>();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const codes = JSON.stringify(op.responses['400']?.content);
      for (const code of ['FST_ERR_BAD_URL', 'REQUEST_MALFORMED'])
        assert.ok(codes.includes(code), `${method} ${path} ${code}`);
      for (const status of ['408', '414', '417', '431']) assert.ok(op.responses[status], `${method} ${path} ${status}`);
      assert.ok(JSON.stringify(op.responses['503']?.content).includes('DRAINING'), `${method} ${path} 503 DRAINING`);
    }
  }
});

test('a body sent to a route that takes none should be 400 BODY_NOT_ALLOWED, declared; an empty one passes', async (t) => {
  const { call } = shell(t);
  for (const [payload, headers] of [
    ['{"verbose":true}', { 'content-type': 'application/json' }],
    ['{"verbose":', { 'content-type': 'application/json' }],
    ['anything', { 'content-type': 'text/plain' }],
  ] as const) {
    const answer = await call('GET', '/healthz', { payload, headers });
    assert.deepEqual(
      [answer.status, JSON.parse(answer.body)],
      [400, { code: 'BODY_NOT_ALLOWED', message: 'GET /healthz takes no body', field: 'body' }],
    );
  }
  assert.equal((await call('GET', '/healthz', { payload: '', headers: { 'content-length': '0' } })).status, 200);
});

test('an empty JSON body is no body, and a route without a contract (a proxy) passes bodies on', async (t) => {
  const { app } = shell(t);
  app.post('/documented', { schema: { response: { 204: { type: 'null' } } } }, (_request, reply) =>
    reply.status(204).send(),
  );
  app.post('/proxied', (request) => ({ got: request.body }));
  // Found by a fresh user: Content-Type JSON with Content-Length 0 was FST_ERR_CTP_EMPTY_JSON_BODY.
  const empty = await app.inject({
    method: 'POST',
    url: '/documented',
    headers: { 'content-type': 'application/json', 'content-length': '0' },
  });
  assert.equal(empty.statusCode, 204, empty.body);
  const refused = await app.inject({ method: 'POST', url: '/documented', payload: { x: 1 } });
  assert.equal(refused.json<{ code: string }>().code, 'BODY_NOT_ALLOWED');
  // The demo's /api/* proxy routes have no contract: every write of the demo page was refused.
  const proxied = await app.inject({ method: 'POST', url: '/proxied', payload: { body: 'via demo' } });
  assert.deepEqual([proxied.statusCode, proxied.json()], [200, { got: { body: 'via demo' } }]);
});
