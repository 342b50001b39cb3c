import { createRemoteJWKSet, importSPKI, jwtVerify } from 'jose';
import { RippleError } from '@ripple/errors';
import { DEVELOPMENT_JWT_SECRET, hs256AccessVerifier, jwtSecret, verifyAccess } from './tokens.js';
import type { AccessClaims } from './tokens.js';

/**
 * How access tokens are checked. HS256 with the shared JWT_SECRET is the default; RS256 takes the
 * identity provider's public key as PEM or a JWKS URL (keys picked by `kid`, cached).
 */
export type JwtVerification =
  | { readonly algorithm: 'HS256'; readonly secret: string }
  | { readonly algorithm: 'RS256'; readonly publicKey: string }
  | { readonly algorithm: 'RS256'; readonly jwksUrl: string };

export interface JwtOptions {
  readonly verification: JwtVerification;
  /** When set, tokens must carry this `iss`. */
  readonly issuer?: string | undefined;
  /** When set, tokens must carry this `aud`. */
  readonly audience?: string | undefined;
}

/** The JWT_* variables (libs/config CommonEnv). */
export interface JwtEnv {
  readonly NODE_ENV: string;
  readonly JWT_ALGORITHM: 'HS256' | 'RS256';
  readonly JWT_SECRET?: string | undefined;
  readonly JWT_PUBLIC_KEY?: string | undefined;
  readonly JWT_JWKS_URL?: string | undefined;
  readonly JWT_ISSUER?: string | undefined;
  readonly JWT_AUDIENCE?: string | undefined;
}

/**
 * Access-token verification from the environment. HS256 without JWT_SECRET uses the development
 * secret (with `warn`) outside production and is refused in production; RS256 needs a key source.
 */
export function jwtOptionsFrom(env: JwtEnv, warn: (msg: string) => void): JwtOptions {
  const claims = { issuer: env.JWT_ISSUER, audience: env.JWT_AUDIENCE };
  if (env.JWT_ALGORITHM === 'RS256') {
    if (env.JWT_PUBLIC_KEY !== undefined) {
      return { verification: { algorithm: 'RS256', publicKey: env.JWT_PUBLIC_KEY }, ...claims };
    }
    if (env.JWT_JWKS_URL !== undefined) {
      return { verification: { algorithm: 'RS256', jwksUrl: env.JWT_JWKS_URL }, ...claims };
    }
    throw new RippleError('CONFIG_INVALID', 'JWT_ALGORITHM=RS256 needs JWT_PUBLIC_KEY or JWT_JWKS_URL');
  }
  if (env.JWT_SECRET !== undefined) {
    return { verification: { algorithm: 'HS256', secret: env.JWT_SECRET }, ...claims };
  }
  if (env.NODE_ENV === 'production') {
    throw new RippleError('CONFIG_INVALID', 'JWT_SECRET must be set when NODE_ENV=production');
  }
  warn('JWT_SECRET is not set: using the development secret. Never do this in production.');
  return { verification: { algorithm: 'HS256', secret: DEVELOPMENT_JWT_SECRET }, ...claims };
}

export type AccessVerifier = (token: string) => Promise<AccessClaims>;

/**
 * Verifies access tokens as `opts` says (the gateway's counterpart of @fastify/jwt in the
 * services). A PEM key that does not parse fails here, at start-up, not on the first token.
 */
export async function accessTokenVerifier(opts: JwtOptions): Promise<AccessVerifier> {
  const v = opts.verification;
  const checks = {
    algorithms: [v.algorithm],
    requiredClaims: ['sub', 'exp'],
    ...(opts.issuer !== undefined && { issuer: opts.issuer }),
    ...(opts.audience !== undefined && { audience: opts.audience }),
  };
  if ('secret' in v) return hs256AccessVerifier(jwtSecret(v.secret), opts);
  if ('publicKey' in v) {
    const key = await importSPKI(v.publicKey, 'RS256').catch((err: unknown) => {
      throw new RippleError('CONFIG_INVALID', `JWT_PUBLIC_KEY is not an SPKI PEM public key: ${String(err)}`);
    });
    return (token) => verifyAccess(token, (t) => jwtVerify(t, key, checks));
  }
  const jwks = createRemoteJWKSet(new URL(v.jwksUrl));
  return (token) => verifyAccess(token, (t) => jwtVerify(t, jwks, checks));
}
