import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import { installAuth } from './auth.js';
import { installCors } from './cors.js';
import type { AllowedOrigins } from './cors.js';
import { HttpErrors } from './error-kinds.js';
import type { JwtOptions } from '@ripple/auth';
import { serviceShell } from './health.js';
import type { ServiceShellOptions } from './health.js';
import { installOverloadProtection } from './overload.js';
import type { OverloadOptions } from './overload.js';
import { settledRateLimitStore } from './rate-limit-store.js';

/** How often a replica adds its local rate-limit counts to Redis, in ms. */
export const DEFAULT_RATE_LIMIT_SETTLE_MS = 100;

export interface ApiOptions extends ServiceShellOptions {
  readonly name: string;
  readonly description: string;
  readonly jwt: JwtOptions;
  /** Rate-limit counters live here, so every replica of the service shares them. */
  readonly redis: Redis;
  readonly redisKeyPrefix: string;
  /**
   * Requests per user (per IP before authentication) per window; counted locally and settled in
   * Redis every `settleMs` (default {@link DEFAULT_RATE_LIMIT_SETTLE_MS}) while far from the limit
   * (see `settledRateLimitStore`).
   */
  readonly rateLimit: { readonly max: number; readonly windowMs: number; readonly settleMs?: number };
  /** Load shedding (503 OVERLOADED); without it nothing is shed. */
  readonly overload?: OverloadOptions;
  /** Browser origins allowed to call the API (CORS); without it, none. */
  readonly corsOrigins?: AllowedOrigins;
}

/**
 * A domain service's fastify app: the service shell (errors, /healthz, /readyz, /metrics),
 * load shedding, @fastify/jwt, OpenAPI at /docs (JSON at /docs/json), and per-user rate limiting kept in Redis
 * (counted locally between settlements far from the limit: no Redis round trip per request).
 * Routes added after this are documented and limited; the operational routes are documented, never limited.
 */
export async function createApiApp(opts: ApiOptions): Promise<FastifyInstance> {
  const app = serviceShell({ ...opts, openapi: { title: opts.name, description: opts.description, bearer: true } });
  // First, so a shed request costs neither a token verification nor a Redis round trip.
  if (opts.overload) await installOverloadProtection(app, opts.overload, opts.metrics, opts.classifyError);
  // Before authentication: a preflight carries no token.
  if (opts.corsOrigins) await installCors(app, opts.corsOrigins);
  await installAuth(app, opts.jwt);
  const store = settledRateLimitStore(
    opts.redis,
    `${opts.redisKeyPrefix}ratelimit:${opts.name}:`,
    opts.rateLimit.settleMs ?? DEFAULT_RATE_LIMIT_SETTLE_MS,
  );
  app.addHook('onClose', () => store.close());
  await app.register(rateLimit, {
    max: opts.rateLimit.max,
    timeWindow: opts.rateLimit.windowMs,
    // After authentication, so the key is the user rather than a shared NAT address.
    hook: 'preHandler',
    keyGenerator: (request: FastifyRequest) => {
      const user = request.user as { sub?: string } | undefined;
      return user?.sub !== undefined ? `user:${user.sub}` : `ip:${request.ip}`;
    },
    allowList: (request: FastifyRequest) => request.routeOptions.url?.startsWith('/docs') ?? false,
    store: store.Store,
    // Redis down must not take the API down with it: requests then pass unlimited.
    skipOnError: true,
    // In seconds, as Retry-After and x-ratelimit-reset (both the whole seconds until the window
    // resets); `context.after` is that wait in words ("59 seconds"), not the window.
    errorResponseBuilder: (_request, context) =>
      HttpErrors.rateLimited.error(
        `rate limit of ${context.max} requests per ${opts.rateLimit.windowMs / 1000} s exceeded; retry after ${Math.ceil(context.ttl / 1000)} s`,
      ),
  });
  return app;
}
