import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Redis } from 'ioredis';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import type { FastifyInstance } from 'fastify';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { cleanupAll, deleteKeys, runId, testInfra } from '@ripple/testing';
import { createApiApp } from './api.js';
import { requireUser, userOf } from './auth.js';
import { allowedOriginsOf } from './cors.js';
import type { AllowedOrigins } from './cors.js';
import type { JwtOptions } from '@ripple/auth';

const redis = new Redis(testInfra.redisUrl);
const prefix = `test:${runId()}:`;
const apps: FastifyInstance[] = [];

after(() =>
  cleanupAll(
    ...apps.map((a) => () => a.close()),
    () => deleteKeys(redis, `${prefix}*`),
    () => redis.disconnect(),
  ),
);

async function app(jwt: JwtOptions, rateLimit = { max: 1000, windowMs: 60_000 }, corsOrigins?: AllowedOrigins) {
  const a = await createApiApp({
    name: 'api-test',
    description: 'test',
    logger: createLogger('api-test', 'silent'),
    metrics: createMetricsRegistry('api-test'),
    checks: {},
    jwt,
    redis,
    redisKeyPrefix: prefix,
    rateLimit,
    ...(corsOrigins && { corsOrigins }),
  });
  a.get('/me', { onRequest: requireUser }, (request) => ({ sub: userOf(request).sub }));
  apps.push(a);
  return a;
}

const get = async (a: FastifyInstance, token: string) => {
  const res = await a.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${token}` } });
  return [res.statusCode, res.json<{ sub?: string; code?: string }>().sub ?? res.json<{ code: string }>().code];
};

test('RS256 with a PEM public key should accept the key holder’s tokens and refuse HS256 confusion', async () => {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const pem = await exportSPKI(publicKey);
  const a = await app({ verification: { algorithm: 'RS256', publicKey: pem }, issuer: 'idp', audience: 'ripple' });
  const sign = (claims: Record<string, unknown>) =>
    new SignJWT({ iss: 'idp', aud: 'ripple', ...claims })
      .setProtectedHeader({ alg: 'RS256' })
      .setSubject('u1')
      .setExpirationTime('1m')
      .sign(privateKey);
  assert.deepEqual(await get(a, await sign({})), [200, 'u1']);
  assert.deepEqual(await get(a, await sign({ iss: 'other' })), [401, 'AUTH_TOKEN_INVALID']);
  assert.deepEqual(await get(a, await sign({ aud: 'other' })), [401, 'AUTH_TOKEN_INVALID']);
  // The classic attack: an HS256 token whose HMAC key is the (public) PEM.
  const confused = await new SignJWT({ iss: 'idp', aud: 'ripple' })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('u1')
    .setExpirationTime('1m')
    .sign(new TextEncoder().encode(pem));
  assert.deepEqual(await get(a, confused), [401, 'AUTH_TOKEN_INVALID']);
});

test('RS256 with a JWKS URL should pick the key by kid', async () => {
  const keys = await Promise.all([generateKeyPair('RS256'), generateKeyPair('RS256')]);
  const jwks = {
    keys: await Promise.all(
      keys.map(async ({ publicKey }, i) => ({ ...(await exportJWK(publicKey)), kid: `k${i}`, alg: 'RS256' })),
    ),
  };
  const server = createServer((_req, res) =>
    res.setHeader('content-type', 'application/json').end(JSON.stringify(jwks)),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/.well-known/jwks.json`;
    const a = await app({ verification: { algorithm: 'RS256', jwksUrl: url } });
    const sign = (i: number, kid: string) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'RS256', kid })
        .setSubject(`user${i}`)
        .setExpirationTime('1m')
        .sign((i === 0 ? keys[0] : keys[1]).privateKey);
    assert.deepEqual(await get(a, await sign(0, 'k0')), [200, 'user0']);
    assert.deepEqual(await get(a, await sign(1, 'k1')), [200, 'user1']);
    assert.deepEqual(await get(a, await sign(1, 'k0')), [401, 'AUTH_TOKEN_INVALID']);
    assert.deepEqual(await get(a, await sign(0, 'unknown')), [401, 'AUTH_TOKEN_INVALID']);
  } finally {
    server.close();
  }
});

test('rate limits should count per user across replicas through Redis and answer 429 with a code', async () => {
  const jwt: JwtOptions = { verification: { algorithm: 'HS256', secret: 'rate-limit-test-secret-0123456789' } };
  const limit = { max: 3, windowMs: 60_000 };
  const [a, b] = [await app(jwt, limit), await app(jwt, limit)];
  const token = (sub: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(sub)
      .setExpirationTime('1m')
      .sign(new TextEncoder().encode('rate-limit-test-secret-0123456789'));
  const alice = await token('alice');
  const codes = [await get(a, alice), await get(b, alice), await get(a, alice), await get(b, alice)];
  assert.deepEqual(
    codes.map(([status]) => status),
    [200, 200, 200, 429],
  );
  assert.equal(codes[3]?.[1], 'RATE_LIMITED');
  const limited = await a.inject({ method: 'GET', url: '/me', headers: { authorization: `Bearer ${alice}` } });
  const retryAfter = Number(limited.headers['retry-after']);
  assert.ok(retryAfter > 0);
  // The message says the window and the wait that Retry-After and x-ratelimit-reset say, in seconds.
  assert.equal(limited.headers['x-ratelimit-reset'], String(retryAfter));
  assert.equal(
    limited.json<{ message: string }>().message,
    `rate limit of 3 requests per 60 s exceeded; retry after ${retryAfter} s`,
  );
  assert.deepEqual(await get(b, await token('bob')), [200, 'bob'], 'another user has their own budget');
  assert.equal((await a.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'health is not limited');
});

test('CORS should let a listed origin call (preflight and request) and give others no CORS headers', async () => {
  const a = await app({ verification: { algorithm: 'HS256', secret: 'cors-secret-0123456789' } }, undefined, [
    'http://app.example.test',
  ]);
  const preflight = await a.inject({
    method: 'OPTIONS',
    url: '/me',
    headers: {
      origin: 'http://app.example.test',
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'authorization, content-type, idempotency-key',
    },
  });
  assert.equal(preflight.statusCode, 204);
  assert.equal(preflight.headers['access-control-allow-origin'], 'http://app.example.test');
  assert.match(String(preflight.headers['access-control-allow-headers']), /idempotency-key/);
  // Every method a route uses (PUT /me/following/:userId included) may be called cross-origin.
  const methods = String(preflight.headers['access-control-allow-methods']).split(/,\s*/);
  for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) assert.ok(methods.includes(method), method);
  assert.ok(!methods.includes('HEAD'), 'HEAD is served nowhere, so it is not offered');
  const allowed = await a.inject({ method: 'GET', url: '/me', headers: { origin: 'http://app.example.test' } });
  assert.equal(allowed.statusCode, 401, 'CORS never replaces authentication');
  assert.equal(allowed.headers['access-control-allow-origin'], 'http://app.example.test');
  assert.match(String(allowed.headers['access-control-expose-headers']), /retry-after/);
  const foreign = await a.inject({ method: 'GET', url: '/me', headers: { origin: 'http://evil.example.test' } });
  assert.equal(foreign.headers['access-control-allow-origin'], undefined);
});

test('CORS_ORIGINS should default to any origin outside production and none in production', () => {
  assert.equal(allowedOriginsOf(undefined, 'development'), '*');
  assert.deepEqual(allowedOriginsOf(undefined, 'production'), []);
  assert.equal(allowedOriginsOf(' * ', 'production'), '*');
  assert.deepEqual(allowedOriginsOf('https://a.example, https://b.example:8443', 'production'), [
    'https://a.example',
    'https://b.example:8443',
  ]);
  assert.deepEqual(allowedOriginsOf('', 'development'), []);
});
