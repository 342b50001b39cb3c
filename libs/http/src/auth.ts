import type { FastifyRequest } from 'fastify';
import { extractBearerToken, verifyAccessToken } from '@ripple/auth';
import type { AccessClaims, JwtSecret } from '@ripple/auth';
import { RippleError } from '@ripple/errors';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by `requireUser` on authenticated routes. */
    user?: AccessClaims;
  }
}

/** An onRequest hook that rejects requests without a valid access token (401 with a code). */
export function requireUser(secret: JwtSecret) {
  return async (request: FastifyRequest): Promise<void> => {
    const token = extractBearerToken(request.headers.authorization);
    if (token === undefined) {
      throw new RippleError('AUTH_TOKEN_MISSING', 'send an access token as Authorization: Bearer <token>', {
        status: 401,
      });
    }
    request.user = await verifyAccessToken(secret, token);
  };
}

/** The authenticated user of a request that went through `requireUser`. */
export function userOf(request: FastifyRequest): AccessClaims {
  if (!request.user) throw new RippleError('AUTH_TOKEN_MISSING', 'route is not authenticated', { status: 401 });
  return request.user;
}
