import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { isRippleError } from '@ripple/errors';
import { jwtSecret, signAccessToken, signSubscriptionToken } from './tokens.js';
import { accessTokenVerifier, jwtOptionsFrom } from './verifier.js';
import type { AccessVerifier } from './verifier.js';

const code = async (verify: AccessVerifier, token: string) =>
  verify(token).then(
    (claims) => claims.sub,
    (err: unknown) => (isRippleError(err) ? err.code : String(err)),
  );
const rs256 = (key: Parameters<SignJWT['sign']>[0], claims: Record<string, unknown> = {}, kid?: string) =>
  new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', ...(kid !== undefined && { kid }) })
    .setSubject('u1')
    .setExpirationTime('1m')
    .sign(key);

test('HS256 verification should check the secret, iss and aud, and refuse subscription tokens', async () => {
  const secret = 'verifier-test-secret-0123456789';
  const verify = await accessTokenVerifier({ verification: { algorithm: 'HS256', secret }, issuer: 'idp' });
  const key = jwtSecret(secret);
  assert.equal(await code(verify, await signAccessToken(key, 'u1', { extra: { iss: 'idp' } })), 'u1');
  assert.equal(await code(verify, await signAccessToken(key, 'u1')), 'AUTH_TOKEN_INVALID', 'no iss');
  assert.equal(
    await code(verify, await signAccessToken(key, 'u1', { ttlSeconds: -5, extra: { iss: 'idp' } })),
    'AUTH_TOKEN_EXPIRED',
  );
  assert.equal(await code(verify, await signSubscriptionToken(key, 'u1', 'chat:r')), 'AUTH_TOKEN_INVALID');
  const forGateway = await accessTokenVerifier({ verification: { algorithm: 'HS256', secret }, audience: 'gw' });
  assert.equal(await code(forGateway, await signAccessToken(key, 'u1', { extra: { aud: 'gw' } })), 'u1');
  assert.equal(await code(forGateway, await signAccessToken(key, 'u1', { extra: { aud: 'x' } })), 'AUTH_TOKEN_INVALID');
  assert.equal(await code(forGateway, await signAccessToken(key, 'u1')), 'AUTH_TOKEN_INVALID', 'no aud');
  assert.equal(
    await code(forGateway, `${await signAccessToken(key, 'u1', { extra: { aud: 'gw' } })}x`),
    'AUTH_TOKEN_INVALID',
  );
});

test('RS256 with a PEM key or a JWKS URL should verify the identity provider’s tokens only', async () => {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const other = await generateKeyPair('RS256');
  const pem = await accessTokenVerifier({
    verification: { algorithm: 'RS256', publicKey: await exportSPKI(publicKey) },
  });
  assert.equal(await code(pem, await rs256(privateKey)), 'u1');
  assert.equal(await code(pem, await rs256(other.privateKey)), 'AUTH_TOKEN_INVALID');
  const hs = await signAccessToken(jwtSecret(await exportSPKI(publicKey)), 'u1');
  assert.equal(await code(pem, hs), 'AUTH_TOKEN_INVALID', 'HS256 signed with the public key (algorithm confusion)');

  const jwks = { keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] };
  const server = createServer((_q, res) => res.setHeader('content-type', 'application/json').end(JSON.stringify(jwks)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
    const remote = await accessTokenVerifier({ verification: { algorithm: 'RS256', jwksUrl: url } });
    assert.equal(await code(remote, await rs256(privateKey, {}, 'k1')), 'u1');
    assert.equal(await code(remote, await rs256(other.privateKey, {}, 'k1')), 'AUTH_TOKEN_INVALID');
    assert.equal(await code(remote, await rs256(privateKey, {}, 'k9')), 'AUTH_TOKEN_INVALID');
  } finally {
    server.close();
  }
});

test('misconfiguration should fail at start-up with CONFIG_INVALID', async () => {
  const base = { NODE_ENV: 'development', JWT_ALGORITHM: 'HS256' } as const;
  const warnings: string[] = [];
  assert.equal(jwtOptionsFrom(base, (m) => warnings.push(m)).verification.algorithm, 'HS256');
  assert.equal(warnings.length, 1, 'the development secret is announced');
  for (const env of [
    { ...base, NODE_ENV: 'production' },
    { ...base, JWT_ALGORITHM: 'RS256' as const },
  ]) {
    assert.throws(
      () => jwtOptionsFrom(env, () => undefined),
      (err) => isRippleError(err) && err.code === 'CONFIG_INVALID',
    );
  }
  await assert.rejects(
    accessTokenVerifier({ verification: { algorithm: 'RS256', publicKey: 'not a pem' } }),
    (err) => isRippleError(err) && err.code === 'CONFIG_INVALID',
  );
});
