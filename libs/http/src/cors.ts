import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

/** Browser origins allowed to call: `*` (any), or exact origins (`https://app.example.com`); `[]`: none. */
export type AllowedOrigins = '*' | readonly string[];

/**
 * `CORS_ORIGINS` as allowed origins: a comma-separated list of origins, or `*`. Unset, it is `*`
 * outside production (any page of a developer's may call; requests carry bearer tokens, never
 * cookies, so a foreign page gains nothing it could not do itself) and none in production, where
 * the operator names the web app's origins.
 */
export function allowedOriginsOf(value: string | undefined, nodeEnv: string): AllowedOrigins {
  if (value === undefined) return nodeEnv === 'production' ? [] : '*';
  if (value.trim() === '*') return '*';
  return value
    .split(',')
    .map((o) => o.trim())
    .filter((o) => o !== '');
}

/** Whether a request's `Origin` header may connect (no header: not a browser page, allowed). */
export function originAllowed(allowed: AllowedOrigins, origin: string | undefined): boolean {
  return origin === undefined || allowed === '*' || allowed.includes(origin);
}

/**
 * CORS for every route of `app` (@fastify/cors): a preflight (OPTIONS with
 * Access-Control-Request-Method) of an allowed origin gets
 * `Access-Control-Allow-Origin` (preflights included) with the request headers our APIs read
 * (Authorization, Content-Type, Idempotency-Key, Last-Event-ID) and the response headers they set
 * exposed to scripts; any other origin gets no CORS headers, so the browser keeps the answer from
 * the page. No credentials (cookies) are involved: tokens travel as bearer tokens or in the URL.
 */
export async function installCors(app: FastifyInstance, allowed: AllowedOrigins): Promise<void> {
  // @fastify/cors answers every OPTIONS (a route for all paths): one that is not a preflight (no
  // Access-Control-Request-Method) is 404 NOT_FOUND like any method a path does not list, rather
  // than its 400 text/plain "Invalid Preflight Request".
  app.addHook('onRequest', (request, reply, done) => {
    if (request.method === 'OPTIONS' && request.headers['access-control-request-method'] === undefined) {
      reply.callNotFound();
      return;
    }
    done();
  });
  await app.register(cors, {
    origin: allowed === '*' ? '*' : [...allowed],
    // No HEAD: HEAD twins of GET routes are off (exposeHeadRoutes: false), it is a 404 everywhere.
    methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    allowedHeaders: ['authorization', 'content-type', 'idempotency-key', 'last-event-id'],
    exposedHeaders: [
      'idempotent-replayed',
      'retry-after',
      'x-ratelimit-limit',
      'x-ratelimit-remaining',
      'x-ratelimit-reset',
    ],
    maxAge: 600,
  });
}
