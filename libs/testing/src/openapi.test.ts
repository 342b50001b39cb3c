import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OpenApiContract } from './openapi.js';

const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const error = json({
  type: 'object',
  required: ['code', 'message'],
  additionalProperties: false,
  properties: { code: { type: 'string', enum: ['THING_NOT_FOUND'] }, message: { type: 'string' } },
});
const doc = {
  openapi: '3.0.3',
  info: { title: 'things', version: '1' },
  paths: {
    '/things/{id}': {
      get: {
        responses: {
          '200': {
            description: 'a thing',
            headers: { 'X-Cache': { schema: { type: 'string' } } },
            ...json({ type: 'object', required: ['id'], properties: { id: { type: 'string' } } }),
          },
          '404': { description: 'none', ...error },
        },
      },
      delete: { responses: { '204': { description: 'gone' } } },
    },
    '/things/mine': { get: { responses: { '200': { description: 'mine', ...json({ type: 'array' }) } } } },
  },
};
const JSON_TYPE = 'application/json; charset=utf-8';
const exchange = (method: string, url: string, status: number, body: string, contentType = JSON_TYPE) => ({
  method,
  url,
  status,
  body,
  contentType,
});

test('an OpenAPI contract should accept answers the document promises', async () => {
  const contract = await OpenApiContract.load(doc);
  contract.check(exchange('GET', '/things/1?x=2', 200, '{"id":"1"}'));
  contract.check(exchange('GET', '/things/2', 404, '{"code":"THING_NOT_FOUND","message":"no"}'));
  contract.check(exchange('DELETE', '/things/1', 204, '', undefined));
  contract.check(exchange('GET', '/things/mine', 200, '[]'));
  assert.equal(contract.operationOf('GET', '/things/mine'), 'GET /things/mine');
  // An empty path parameter is the operation's request too (its 400 names the parameter).
  assert.equal(contract.operationOf('GET', '/things/'), 'GET /things/{id}');
});

test('an OpenAPI contract should refuse an unlisted status, a wrong body, an unknown route or a body on 204', async () => {
  const contract = await OpenApiContract.load(doc);
  const refuses = (e: ReturnType<typeof exchange>, message: RegExp) =>
    assert.throws(() => contract.check(e), { name: 'AssertionError', message });
  refuses(exchange('GET', '/things/1', 400, '{"code":"X","message":"m"}'), /status not in the contract/);
  refuses(exchange('GET', '/things/1', 404, '{"code":"OTHER","message":"m"}'), /breaks the contract/);
  refuses(exchange('GET', '/things/1', 200, '{"name":"x"}'), /breaks the contract/);
  refuses(exchange('GET', '/things/1', 200, '{"id":"1"}', 'text/plain'), /content-type/);
  refuses(exchange('POST', '/things/1', 201, '{}'), /no such operation/);
  refuses(exchange('GET', '/other', 200, '{}'), /no such operation/);
  refuses(exchange('DELETE', '/things/1', 204, 'null'), /no body/);
});

test('an OpenAPI contract should refuse a document that is not valid OpenAPI', async () => {
  await assert.rejects(OpenApiContract.load({ openapi: '3.0.3', paths: {} }));
});

const globalDoc = {
  ...doc,
  paths: {
    ...doc.paths,
    '/metrics': {
      get: { responses: { '200': { description: 'text', content: { 'text/plain': { schema: { type: 'string' } } } } } },
    },
  },
  'x-global-responses': {
    '404': {
      description: 'unknown route',
      ...json({
        type: 'object',
        required: ['code', 'message'],
        additionalProperties: false,
        properties: { code: { type: 'string', enum: ['NOT_FOUND'] }, message: { type: 'string' } },
      }),
    },
  },
};

test('an OpenAPI contract should accept a global response for any request, and only it for an unknown route', async () => {
  const contract = await OpenApiContract.load(globalDoc);
  contract.check(exchange('GET', '/nothing/here', 404, '{"code":"NOT_FOUND","message":"no route"}'));
  contract.check(exchange('PATCH', '/things/1', 404, '{"code":"NOT_FOUND","message":"no route"}'));
  assert.throws(
    () => contract.check(exchange('GET', '/nothing/here', 404, '{"code":"THING_NOT_FOUND","message":"m"}')),
    /no such operation; as a global response: the body breaks the contract/,
  );
  assert.throws(() => contract.check(exchange('GET', '/nothing/here', 200, '{}')), /no such operation/);
  // An operation's answers are its own: a global response it does not declare itself is refused.
  assert.throws(
    () => contract.check(exchange('GET', '/things/1', 404, '{"code":"NOT_FOUND","message":"no route"}')),
    /breaks the contract/,
  );
  assert.throws(
    () => contract.check(exchange('GET', '/things/1', 404, '{"code":"NOT_FOUND","message":"m","error":"x"}')),
    /breaks the contract/,
  );
});

test('an OpenAPI contract should check a non-JSON answer by its declared content type', async () => {
  const contract = await OpenApiContract.load(globalDoc);
  contract.check(exchange('GET', '/metrics', 200, '# HELP x\n', 'text/plain; version=0.0.4; charset=utf-8'));
  assert.throws(() => contract.check(exchange('GET', '/metrics', 200, '{}')), /content-type .* says text\/plain/);
});

test('an OpenAPI contract should list a request for every method a documented path does not have', async () => {
  const contract = await OpenApiContract.load(doc);
  const probes = contract.undocumentedMethods().map((p) => `${p.method} ${p.url}`);
  assert.ok(probes.includes('HEAD /things/x'));
  assert.ok(probes.includes('OPTIONS /things/mine'));
  assert.ok(probes.includes('POST /things/x'));
  assert.ok(!probes.includes('GET /things/x') && !probes.includes('DELETE /things/x'));
  assert.ok(!probes.includes('DELETE /things/mine'), 'DELETE /things/{id} answers it');
  assert.equal(probes.length, 2 * 8 - 4);
});

test('an OpenAPI contract should refuse a response header the status does not declare, but not HTTP’s own', async () => {
  const contract = await OpenApiContract.load(doc);
  const withHeaders = (headers: Record<string, string>) => ({
    ...exchange('GET', '/things/1', 200, '{"id":"1"}'),
    headers,
  });
  contract.check(
    withHeaders({ 'x-cache': 'hit', 'content-length': '10', date: 'now', 'access-control-allow-origin': '*' }),
  );
  assert.throws(() => contract.check(withHeaders({ 'x-ratelimit-limit': '10' })), {
    name: 'AssertionError',
    message: /header\(s\) x-ratelimit-limit not declared/,
  });
  assert.throws(
    () =>
      contract.check({
        ...exchange('GET', '/things/2', 404, '{"code":"THING_NOT_FOUND","message":"no"}'),
        headers: { 'x-cache': 'hit' },
      }),
    { name: 'AssertionError', message: /x-cache not declared/ },
  );
});
