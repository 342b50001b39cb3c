import { KeyObject } from 'node:crypto';
import fastifyJwt from '@fastify/jwt';
import type { TokenOrHeader } from '@fastify/jwt';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { createRemoteJWKSet } from 'jose';
import { accessClaimsOf } from '@ripple/auth';
import type { AccessClaims, JwtOptions } from '@ripple/auth';
import { RippleError } from '@ripple/errors';
import { HttpErrors } from './error-kinds.js';

declare module '@fastify/jwt' {
  interface FastifyJWT {
    user: AccessClaims;
  }
}

function jwksKey(url: string) {
  const jwks = createRemoteJWKSet(new URL(url));
  return async (_request: FastifyRequest, token: TokenOrHeader): Promise<string> => {
    const header = ('header' in token ? token.header : token) as Parameters<typeof jwks>[0];
    const key = await jwks(header);
    return KeyObject.from(key).export({ type: 'spki', format: 'pem' }).toString();
  };
}

/** Registers @fastify/jwt; routes opt in with `onRequest: requireUser`. */
export async function installAuth(app: FastifyInstance, opts: JwtOptions): Promise<void> {
  const v = opts.verification;
  const secret = 'secret' in v ? v.secret : 'publicKey' in v ? { public: v.publicKey } : jwksKey(v.jwksUrl);
  await app.register(fastifyJwt, {
    secret,
    decode: { complete: 'jwksUrl' in v },
    verify: {
      algorithms: [v.algorithm],
      requiredClaims: ['sub', 'exp'],
      // Verified tokens are remembered (fast-jwt's LRU, up to their expiry): a client sends the
      // same token with every request, and the HMAC per request was ~2% of the write path's CPU.
      cache: 10_000,
      ...(opts.issuer !== undefined && { allowedIss: opts.issuer }),
      ...(opts.audience !== undefined && { allowedAud: opts.audience }),
    },
    // The same rules as the gateway's verifier: a user id as subject, no subscription tokens.
    formatUser: (payload) => accessClaimsOf(payload as Parameters<typeof accessClaimsOf>[0]),
  });
}

const MISSING = new Set(['FST_JWT_NO_AUTHORIZATION_IN_HEADER', 'FST_JWT_BAD_REQUEST']);

/** An onRequest hook that rejects requests without a valid access token (401 with a code). */
export async function requireUser(request: FastifyRequest): Promise<void> {
  try {
    await request.jwtVerify();
  } catch (err) {
    if (err instanceof RippleError) throw err;
    const code = (err as { code?: string }).code ?? '';
    if (MISSING.has(code)) {
      throw HttpErrors.tokenMissing.error('send an access token as Authorization: Bearer <token>');
    }
    if (code === 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED') {
      throw HttpErrors.tokenExpired.error('token has expired');
    }
    throw HttpErrors.tokenInvalid.error('token is malformed, forged or uses a forbidden algorithm');
  }
}

/** The authenticated user of a request that went through `requireUser`. */
export function userOf(request: FastifyRequest): AccessClaims {
  return request.user;
}
