import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { WebSocket } from 'ws';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { cleanupAll, OpenApiContract, rawHttp } from '@ripple/testing';
import { TestClient, callApi, checkHttpAnswer, isolatedRun, openSse, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// The gateway's HTTP surface (/sse, /ws before the upgrade, /healthz, /readyz, /metrics, and what
// any request may get) answers what the OpenAPI document it serves at /docs/json promises: a
// real gateway, each answer checked against that document by callApi/openSse.
const iso = isolatedRun('gwcontract');
const secret = jwtSecret(iso.jwtSecretText);
const APP = 'http://app.example.test';
let gateway: RunningService;
let token: string;
const user = `g${iso.run}`;

before(async () => {
  gateway = await spawnService('fanout-gateway', {
    ...iso.env,
    NODE_ID: `gwcontract-${iso.run}`,
    KAFKA_GROUP_ID: `gwcontract.${iso.run}.gateway`,
    WS_ORIGINS: APP,
    CORS_ORIGINS: APP,
  });
  token = await signAccessToken(secret, user);
});

after(() =>
  cleanupAll(
    () => gateway?.stop(),
    () => iso.cleanup(),
  ),
);

interface Operation {
  parameters?: { name: string; in: string; required?: boolean }[];
  responses: Record<string, unknown>;
}

test('the gateway should serve a valid OpenAPI document of its HTTP routes, from the schemas that validate them', async () => {
  const doc = await (await fetch(`${gateway.url}/docs/json`)).json();
  await OpenApiContract.load(doc);
  const paths = (doc as { paths: Record<string, { get?: Operation }> }).paths;
  for (const path of ['/sse', '/ws', '/healthz', '/readyz', '/metrics']) assert.ok(paths[path]?.get, path);
  const sse = paths['/sse']?.get;
  const param = (name: string) => sse?.parameters?.find((p) => p.name === name);
  assert.equal(param('channels')?.required, true);
  assert.equal(param('access_token')?.required ?? false, false);
  assert.equal(param('last-event-id')?.in, 'header');
  // 503 DRAINING too: a request that arrives while the server closes.
  const anyRequest = ['408', '414', '417', '431', '503'];
  assert.deepEqual(Object.keys(sse?.responses ?? {}).sort(), ['200', '400', '401', '403', ...anyRequest, '500'].sort());
  assert.deepEqual(
    Object.keys(paths['/ws']?.get?.responses ?? {}).sort(),
    ['101', '400', '403', ...anyRequest, '426', '500'].sort(),
  );
});

test('the operational routes should answer as documented', async () => {
  assert.deepEqual((await callApi(gateway, 'GET', '/healthz')).json(), { status: 'ok' });
  assert.equal((await callApi(gateway, 'GET', '/readyz')).status, 200);
  const metrics = await callApi(gateway, 'GET', '/metrics');
  assert.match(metrics.text, /gateway_/);
});

test('/sse refusals should be documented errors with their codes', async () => {
  const cases: [string, number, string, string?][] = [
    [`/sse?access_token=${token}`, 400, 'VALIDATION_FAILED', 'query.channels'],
    [`/sse?channels=%20&access_token=${token}`, 400, 'GW_BAD_REQUEST', 'query.channels'],
    [`/sse?channels=nonsense&access_token=${token}`, 400, 'GW_CHANNEL_INVALID'],
    [`/sse?channels=creator:c1`, 401, 'AUTH_TOKEN_MISSING'],
    [`/sse?channels=creator:c1&access_token=${token}x`, 401, 'AUTH_TOKEN_INVALID'],
    [`/sse?channels=user:someone-else&access_token=${token}`, 403, 'GW_SUBSCRIBE_FORBIDDEN'],
    // A parameter the route does not take (here misspelt) is refused, not ignored.
    [`/sse?channels=creator:c1&access_token=${token}&subscripton_token=x`, 400, 'VALIDATION_FAILED', 'query'],
  ];
  for (const [path, status, code, field] of cases) {
    const answer = await callApi(gateway, 'GET', path);
    const body = answer.json<{ code: string; field?: string }>();
    assert.deepEqual([answer.status, body.code, body.field], [status, code, field], path);
  }
});

test('an /sse stream and a /ws socket should open as documented', async () => {
  const sse = await openSse(`${gateway.url}/sse?channels=creator:c${iso.run}`, { authorization: `Bearer ${token}` });
  assert.equal(sse.status, 200);
  sse.abort();
  const client = TestClient.connect(`ws://127.0.0.1:${gateway.port}/ws?access_token=${token}`, { origin: APP });
  await client.frame((f) => f.op === 'welcome');
  client.close();
});

test('/ws without the handshake should be 426, from a foreign origin 403, with an unknown parameter 400, all documented', async () => {
  const plain = await callApi(gateway, 'GET', `/ws?access_token=${token}`);
  assert.deepEqual([plain.status, plain.json().code], [426, 'GW_UPGRADE_REQUIRED']);
  const unknown = await new Promise<IncomingMessage>((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}/ws?access_token=${token}&acess_token=x`, {
      origin: APP,
    });
    socket.on('unexpected-response', (_request, response) => resolve(response));
    socket.on('open', () => reject(new Error('an upgrade with an unknown query parameter succeeded')));
    socket.on('error', () => undefined);
  });
  let refusal = '';
  for await (const chunk of unknown) refusal += String(chunk);
  assert.equal(unknown.statusCode, 400);
  assert.deepEqual(JSON.parse(refusal), { ...JSON.parse(refusal), code: 'VALIDATION_FAILED', field: 'query' });

  const refused = await new Promise<IncomingMessage>((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${gateway.port}/ws?access_token=${token}`, {
      origin: 'http://evil.example.test',
    });
    socket.on('unexpected-response', (_request, response) => resolve(response));
    socket.on('open', () => reject(new Error('the upgrade from a foreign origin succeeded')));
    socket.on('error', () => undefined);
  });
  let body = '';
  for await (const chunk of refused) body += String(chunk);
  await checkHttpAnswer(gateway.url, {
    method: 'GET',
    url: '/ws',
    status: refused.statusCode ?? 0,
    contentType: refused.headers['content-type'],
    body,
  });
  assert.equal((JSON.parse(body) as { code: string }).code, 'GW_ORIGIN_FORBIDDEN');
});

test('what any request may get (unknown route, bad URL, oversized headers) should be the documented globals', async () => {
  const cases: [string, string, number, string][] = [
    ['GET', '/nowhere', 404, 'NOT_FOUND'],
    ['POST', '/sse', 404, 'NOT_FOUND'],
    ['GET', '/nowhere/%zz', 400, 'FST_ERR_BAD_URL'],
    ['GET', `/sse?channels=${'c'.repeat(17_000)}`, 431, 'REQUEST_HEADERS_TOO_LARGE'],
  ];
  for (const [method, path, status, code] of cases) {
    const answer = await callApi(gateway, method, path);
    assert.deepEqual([answer.status, answer.json().code], [status, code], `${method} ${path.slice(0, 40)}`);
  }
});

test('/sse from a page of an origin outside CORS_ORIGINS should be refused with 403 before the stream opens', async () => {
  const refused = await callApi(gateway, 'GET', `/sse?channels=creator:c1&access_token=${token}`, {
    headers: { origin: 'http://evil.example.test' },
  });
  assert.deepEqual([refused.status, refused.json().code], [403, 'GW_ORIGIN_FORBIDDEN']);
  const allowed = await openSse(`${gateway.url}/sse?channels=creator:c${iso.run}`, {
    authorization: `Bearer ${token}`,
    origin: APP,
  });
  assert.equal(allowed.status, 200);
  allowed.abort();
});

/** Writes an upgrade request for /ws with `headers` on a fresh connection; the answer, when the server closes. */
function rawUpgrade(headers: Record<string, string>) {
  const lines = Object.entries({ host: '127.0.0.1', connection: 'Upgrade', ...headers }).map(([k, v]) => `${k}: ${v}`);
  return rawHttp(gateway.port, `GET /ws?access_token=${token} HTTP/1.1\r\n${lines.join('\r\n')}\r\n\r\n`, false);
}

test('a /ws upgrade the WebSocket library refuses should be 400 GW_HANDSHAKE_INVALID in the shared shape, documented', async () => {
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  const cases: [Record<string, string>, string][] = [
    [{ upgrade: 'foo', 'sec-websocket-key': key, 'sec-websocket-version': '13' }, 'headers.upgrade'],
    [{ upgrade: 'websocket', 'sec-websocket-version': '13' }, 'headers.sec-websocket-key'],
    [
      { upgrade: 'websocket', 'sec-websocket-key': 'short', 'sec-websocket-version': '13' },
      'headers.sec-websocket-key',
    ],
    [{ upgrade: 'websocket', 'sec-websocket-key': key, 'sec-websocket-version': '7' }, 'headers.sec-websocket-version'],
    [{ upgrade: 'websocket', 'sec-websocket-key': key }, 'headers.sec-websocket-version'],
  ];
  for (const [headers, field] of cases) {
    const answer = await rawUpgrade(headers);
    await checkHttpAnswer(gateway.url, { method: 'GET', url: '/ws', ...answer });
    const body = JSON.parse(answer.body) as { code: string; field?: string };
    assert.deepEqual(
      [answer.status, body.code, body.field],
      [400, 'GW_HANDSHAKE_INVALID', field],
      JSON.stringify(headers),
    );
    // RFC 6455 4.4: a version the server does not speak is answered with the versions it does.
    const versions = field === 'headers.sec-websocket-version' ? '13, 8' : undefined;
    assert.equal(answer.headers['sec-websocket-version'], versions, JSON.stringify(headers));
  }
});

test('no method should be served on a documented gateway path that its document does not list (HEAD, ...)', async () => {
  const contract = await OpenApiContract.load(await (await fetch(`${gateway.url}/docs/json`)).json());
  for (const { method, url } of contract.undocumentedMethods()) {
    if (method === 'TRACE') continue; // fetch cannot send it; libs/http's tests do, over node:http
    const answer = await callApi(gateway, method, url);
    assert.equal(answer.status, 404, `${method} ${url}`);
  }
});
