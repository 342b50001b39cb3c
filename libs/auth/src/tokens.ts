import { TokenError, createVerifier } from 'fast-jwt';
import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import type { JWTPayload } from 'jose';
import { RippleError } from '@ripple/errors';

/** Used only outside production, with a warning (DESIGN.md §9). */
export const DEVELOPMENT_JWT_SECRET = 'ripple-development-secret-do-not-use-in-production';

const ALGORITHMS = ['HS256'];
/** User ids are channel-name safe (`user:<id>`). */
export const USER_ID = /^[A-Za-z0-9_-]{1,128}$/;

export interface AccessClaims {
  /** The user id. */
  readonly sub: string;
  /** Expiry, seconds since the epoch. */
  readonly exp: number | undefined;
}

export type JwtSecret = Uint8Array;

export function jwtSecret(secret: string): JwtSecret {
  return new TextEncoder().encode(secret);
}

/**
 * Picks the signing secret: JWT_SECRET when set; the development secret (with `warn`) outside
 * production; otherwise an error, because production must never run with a known secret.
 */
export function resolveJwtSecret(
  env: { JWT_SECRET?: string | undefined; NODE_ENV: string },
  warn: (msg: string) => void,
): JwtSecret {
  if (env.JWT_SECRET !== undefined) return jwtSecret(env.JWT_SECRET);
  if (env.NODE_ENV === 'production') {
    throw new RippleError('CONFIG_INVALID', 'JWT_SECRET must be set when NODE_ENV=production');
  }
  warn('JWT_SECRET is not set: using the development secret. Never do this in production.');
  return jwtSecret(DEVELOPMENT_JWT_SECRET);
}

export async function signAccessToken(
  secret: JwtSecret,
  sub: string,
  opts: { ttlSeconds?: number; extra?: Record<string, unknown> } = {},
): Promise<string> {
  return new SignJWT({ ...opts.extra })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(`${opts.ttlSeconds ?? 3600}s`)
    .sign(secret);
}

/**
 * An HS256 access-token check: only HS256 is accepted, so `alg: none` and algorithm-confusion
 * tokens fail; `sub` and `exp` are required, and `iss` / `aud` when given. The signature is checked
 * with fast-jwt (node:crypto's HMAC, synchronous): jose goes through WebCrypto, whose per-token
 * job cost ~1 ms of the event loop here against ~0.1 ms, and a connect storm verifies one token
 * per socket. The returned function throws RippleError AUTH_TOKEN_EXPIRED or AUTH_TOKEN_INVALID
 * (status 401).
 */
export function hs256AccessVerifier(
  secret: JwtSecret,
  claims: { readonly issuer?: string | undefined; readonly audience?: string | undefined } = {},
): (token: string) => Promise<AccessClaims> {
  const verify = createVerifier({
    key: Buffer.from(secret),
    algorithms: ['HS256'],
    requiredClaims: [
      'sub',
      'exp',
      ...(claims.issuer !== undefined ? ['iss'] : []),
      ...(claims.audience !== undefined ? ['aud'] : []),
    ],
    ...(claims.issuer !== undefined && { allowedIss: claims.issuer }),
    ...(claims.audience !== undefined && { allowedAud: claims.audience }),
  });
  return (token) => verifyAccess(token, (t) => Promise.resolve({ payload: verify(t) as JWTPayload }));
}

/** Verifies an HS256 access token (see `hs256AccessVerifier`). */
export async function verifyAccessToken(secret: JwtSecret, token: string): Promise<AccessClaims> {
  return hs256AccessVerifier(secret)(token);
}

/**
 * The claims of a verified access token, or AUTH_TOKEN_INVALID (401): the subject must be a user
 * id, and a chat subscription token (which proves room membership to the gateway) is not a login.
 */
export function accessClaimsOf(payload: { sub?: unknown; exp?: number | undefined; typ?: unknown }): AccessClaims {
  if (typeof payload.sub !== 'string' || !USER_ID.test(payload.sub)) {
    throw new RippleError('AUTH_TOKEN_INVALID', 'token subject must be a user id ([A-Za-z0-9_-]{1,128})', {
      status: 401,
    });
  }
  if (payload.typ === SUBSCRIPTION_TYPE) {
    throw new RippleError('AUTH_TOKEN_INVALID', 'a subscription token is not an access token', { status: 401 });
  }
  return { sub: payload.sub, exp: payload.exp };
}

/** Checks what every access token must be, whatever verified its signature; maps failures to 401s. */
export async function verifyAccess(
  token: string,
  verify: (token: string) => Promise<{ payload: JWTPayload }>,
): Promise<AccessClaims> {
  try {
    return accessClaimsOf((await verify(token)).payload);
  } catch (err) {
    if (err instanceof RippleError) throw err;
    if (err instanceof joseErrors.JWTExpired || (err instanceof TokenError && err.code === TokenError.codes.expired)) {
      throw new RippleError('AUTH_TOKEN_EXPIRED', 'token has expired', { status: 401, cause: err });
    }
    throw new RippleError('AUTH_TOKEN_INVALID', 'token is malformed, forged or uses a forbidden algorithm', {
      status: 401,
      cause: err,
    });
  }
}

/** Extracts the token from `Authorization: Bearer <t>` or, for browsers, `?access_token=<t>`. */
export function extractBearerToken(authorization: string | undefined, queryToken?: string): string | undefined {
  if (authorization !== undefined) {
    const match = /^Bearer\s+(\S+)$/i.exec(authorization);
    return match?.[1];
  }
  return queryToken === '' ? undefined : queryToken;
}

const SUBSCRIPTION_TYPE = 'subscription';

/** A short-lived token by which chat-service proves that `sub` may read `channel`. */
export async function signSubscriptionToken(
  secret: JwtSecret,
  sub: string,
  channel: string,
  ttlSeconds = 300,
): Promise<string> {
  // `iat` has second granularity; `iat_ms` tells a token signed just before a removal from one
  // signed just after a rejoin within the same second.
  return signAccessToken(secret, sub, {
    ttlSeconds,
    extra: { channel, typ: SUBSCRIPTION_TYPE, iat_ms: Date.now() },
  });
}

/** What a verified subscription token says besides its user and channel. */
export interface SubscriptionClaims {
  /**
   * When chat-service signed it (ms since the epoch): `iat_ms`, or else the start of the `iat`
   * second (the earliest it can have been signed), or -Infinity without either.
   */
  readonly issuedAtMs: number;
}

/** Checks a subscription token for this user and channel; throws GW_SUBSCRIBE_FORBIDDEN otherwise. */
export async function verifySubscriptionToken(
  secret: JwtSecret,
  token: string,
  sub: string,
  channel: string,
): Promise<SubscriptionClaims> {
  try {
    const { payload } = await jwtVerify(token, secret, { algorithms: ALGORITHMS, requiredClaims: ['sub', 'exp'] });
    if (payload.typ === SUBSCRIPTION_TYPE && payload.sub === sub && payload.channel === channel) {
      const issuedAtMs =
        typeof payload.iat_ms === 'number'
          ? payload.iat_ms
          : typeof payload.iat === 'number'
            ? payload.iat * 1000
            : Number.NEGATIVE_INFINITY;
      return { issuedAtMs };
    }
  } catch {
    // fall through: any failure is the same answer
  }
  throw new RippleError('GW_SUBSCRIBE_FORBIDDEN', `no valid subscription token for ${channel}`, { status: 403 });
}
