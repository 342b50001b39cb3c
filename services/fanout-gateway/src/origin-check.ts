import type { FastifyReply, FastifyRequest } from 'fastify';
import { originAllowed } from '@ripple/http';
import type { AllowedOrigins } from '@ripple/http';
import { GatewayHttpErrors } from './http-contract.js';

/**
 * A `preValidation` hook that refuses a browser page of an origin outside `allowed` with 403
 * GW_ORIGIN_FORBIDDEN, before a socket is upgraded or a stream opened (CORS alone would open the
 * stream and only keep the answer from the page). A request without `Origin` is not a page's and
 * passes.
 */
export function refuseForeignOrigin(allowed: AllowedOrigins) {
  return (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void => {
    const origin = request.headers.origin;
    done(
      originAllowed(allowed, origin)
        ? undefined
        : GatewayHttpErrors.originForbidden.error(
            `origin ${origin ?? ''} may not open ${request.url.split('?')[0] ?? ''}`,
          ),
    );
  };
}
