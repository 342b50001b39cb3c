import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RippleError } from '@ripple/errors';
import {
  authorizeChannel,
  extractBearerToken,
  jwtSecret,
  signAccessToken,
  signSubscriptionToken,
  verifyAccessToken,
} from './index.js';

const secret = jwtSecret('test-secret-that-is-long-enough');

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(
    promise,
    (err: unknown) => err instanceof RippleError && err.code === code && err.status === 401,
  );
}

test('verifyAccessToken should accept a token it signed and return the subject', async () => {
  const token = await signAccessToken(secret, 'u42');
  const claims = await verifyAccessToken(secret, token);
  assert.equal(claims.sub, 'u42');
});

test('verifyAccessToken should reject an alg:none token', async () => {
  const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ sub: 'u1', exp: 4102444800 })}.`;
  await rejectsWith(verifyAccessToken(secret, token), 'AUTH_TOKEN_INVALID');
});

test('verifyAccessToken should reject a token signed with another secret', async () => {
  const token = await signAccessToken(jwtSecret('another-secret-that-is-long'), 'u1');
  await rejectsWith(verifyAccessToken(secret, token), 'AUTH_TOKEN_INVALID');
});

test('verifyAccessToken should report an expired token as expired', async () => {
  const token = await signAccessToken(secret, 'u1', { ttlSeconds: -10 });
  await rejectsWith(verifyAccessToken(secret, token), 'AUTH_TOKEN_EXPIRED');
});

test('verifyAccessToken should reject garbage', async () => {
  await rejectsWith(verifyAccessToken(secret, 'not-a-jwt'), 'AUTH_TOKEN_INVALID');
});

test('extractBearerToken should read the header first, then the query', () => {
  assert.equal(extractBearerToken('Bearer abc', 'q'), 'abc');
  assert.equal(extractBearerToken(undefined, 'q'), 'q');
  assert.equal(extractBearerToken('Basic abc', undefined), undefined);
  assert.equal(extractBearerToken(undefined, ''), undefined);
});

test('authorizeChannel should keep user and feed channels private, open creator and post channels, and guard chat channels', async () => {
  assert.equal((await authorizeChannel(secret, 'u1', 'user:u1', undefined)).kind, 'user');
  assert.equal((await authorizeChannel(secret, 'u1', 'feed:u1', undefined)).kind, 'feed');
  assert.equal((await authorizeChannel(secret, 'u1', 'creator:u2', undefined)).kind, 'creator');
  assert.equal((await authorizeChannel(secret, 'u1', 'post:p9', undefined)).kind, 'post');
  const good = await signSubscriptionToken(secret, 'u1', 'chat:r1');
  assert.equal((await authorizeChannel(secret, 'u1', 'chat:r1', good)).kind, 'chat');
  const codeOf = async (channel: string, token?: string): Promise<string> => {
    try {
      await authorizeChannel(secret, 'u1', channel, token);
      return 'allowed';
    } catch (err) {
      return err instanceof RippleError ? err.code : 'unexpected';
    }
  };
  assert.equal(await codeOf('user:u2'), 'GW_SUBSCRIBE_FORBIDDEN');
  assert.equal(await codeOf('feed:u2'), 'GW_SUBSCRIBE_FORBIDDEN');
  assert.equal(await codeOf('chat:r1'), 'GW_SUBSCRIBE_FORBIDDEN');
  assert.equal(await codeOf('chat:r2', good), 'GW_SUBSCRIBE_FORBIDDEN', 'token of another room');
  assert.equal(await codeOf('chat:r1', await signSubscriptionToken(secret, 'u2', 'chat:r1')), 'GW_SUBSCRIBE_FORBIDDEN');
  assert.equal(
    await codeOf('chat:r1', await signAccessToken(secret, 'u1')),
    'GW_SUBSCRIBE_FORBIDDEN',
    'an access token',
  );
  assert.equal(await codeOf('nope'), 'GW_CHANNEL_INVALID');
  assert.equal(await codeOf('creator:'), 'GW_CHANNEL_INVALID');
});

test('authorizeChannel should refuse a chat token signed before its user left the room, and accept one signed after', async () => {
  const leftAtMs = Math.floor(Date.now() / 1000) * 1000 - 5_000 + 700; // .700 into a second, just past
  const marks = {
    leftAt: (room: string, user: string) => Promise.resolve(room === 'r1' && user === 'u1' ? leftAtMs : undefined),
  };
  const signedAt = (iatMs: number | undefined) =>
    signAccessToken(secret, 'u1', {
      extra: { channel: 'chat:r1', typ: 'subscription', ...(iatMs !== undefined && { iat_ms: iatMs }) },
    });
  const codeOf = async (token: string, channel = 'chat:r1'): Promise<string> => {
    try {
      await authorizeChannel(secret, 'u1', channel, token, marks);
      return 'allowed';
    } catch (err) {
      return err instanceof RippleError ? err.code : 'unexpected';
    }
  };
  assert.equal(await codeOf(await signedAt(leftAtMs - 1)), 'GW_SUBSCRIBE_FORBIDDEN', 'signed before the removal');
  assert.equal(await codeOf(await signedAt(leftAtMs)), 'GW_SUBSCRIBE_FORBIDDEN', 'the same millisecond is refused');
  assert.equal(await codeOf(await signedAt(leftAtMs + 1)), 'allowed', 'signed after a rejoin, within the same second');
  assert.equal(await codeOf(await signSubscriptionToken(secret, 'u1', 'chat:r1')), 'allowed', 'a fresh token');
  // Without iat_ms only the `iat` second is known: a token of the removal's second may predate it.
  const legacy = await signedAt(undefined);
  const iat = (JSON.parse(Buffer.from(legacy.split('.')[1] ?? '', 'base64url').toString()) as { iat: number }).iat;
  const legacyMarks = (leftAt: number) => ({ leftAt: () => Promise.resolve(leftAt) });
  const legacyCode = async (leftAt: number) => {
    try {
      await authorizeChannel(secret, 'u1', 'chat:r1', legacy, legacyMarks(leftAt));
      return 'allowed';
    } catch (err) {
      return err instanceof RippleError ? err.code : 'unexpected';
    }
  };
  assert.equal(await legacyCode(iat * 1000 + 500), 'GW_SUBSCRIBE_FORBIDDEN', 'left within the iat second');
  assert.equal(await legacyCode(iat * 1000 - 1), 'allowed', 'left the second before');
  assert.equal(await codeOf(await signedAt(leftAtMs - 1), 'chat:r2'), 'GW_SUBSCRIBE_FORBIDDEN', 'another room');
});

test('signSubscriptionToken should record when it signed to the millisecond', async () => {
  const before = Date.now();
  const token = await signSubscriptionToken(secret, 'u1', 'chat:r1');
  const { iat_ms: iatMs } = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString()) as {
    iat_ms: number;
  };
  assert.ok(iatMs >= before && iatMs <= Date.now());
});
