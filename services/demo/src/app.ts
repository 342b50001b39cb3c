import { readFileSync } from 'node:fs';
import proxy from '@fastify/http-proxy';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { signAccessToken } from '@ripple/auth';
import type { JwtSecret } from '@ripple/auth';
import { RippleError } from '@ripple/errors';
import { serviceShell } from '@ripple/http';
import type { Logger, Registry } from '@ripple/telemetry';

export interface DemoDeps {
  readonly logger: Logger;
  readonly registry: Registry;
  /** Signs development access tokens; undefined in production, where the token route refuses. */
  readonly devSecret: JwtSecret | undefined;
  /** The page's script: web/app.js bundled with @ripple/client (bundleForBrowser). */
  readonly script: string;
  readonly gatewayUrl: string;
  /** Base URLs the `/api/<name>/*` routes forward to (same origin for the browser: no CORS). */
  readonly upstreams: { readonly posts: string; readonly chat: string; readonly notifications: string };
}

const TokenQuery = Type.Object(
  { user: Type.String({ pattern: '^[A-Za-z0-9_-]{1,128}$' }) },
  { additionalProperties: false },
);
const DEV_TOKEN_TTL_S = 3600;
const page = readFileSync(new URL('../web/index.html', import.meta.url), 'utf8');

/**
 * The demo web app: `/` the page, `/app.js` its bundle, `/api/config`, `/api/token?user=<id>` (a
 * development token, 403 `DEMO_TOKENS_DISABLED` in production), and `/api/{posts,chat,notifications}/*`
 * forwarded to the domain services with the caller's Authorization header.
 */
export async function buildDemoApp(deps: DemoDeps): Promise<FastifyInstance> {
  const app = serviceShell({ logger: deps.logger, metrics: deps.registry, checks: {} });
  app.get('/', (_request, reply) => reply.type('text/html; charset=utf-8').send(page));
  app.get('/app.js', (_request, reply) => reply.type('text/javascript; charset=utf-8').send(deps.script));
  app.get('/api/config', () => ({ gatewayUrl: deps.gatewayUrl }));
  app.get('/api/token', { schema: { querystring: TokenQuery } }, async (request) => {
    if (!deps.devSecret) {
      throw new RippleError('DEMO_TOKENS_DISABLED', 'development tokens are refused in production', { status: 403 });
    }
    const { user } = request.query as { user: string };
    return { token: await signAccessToken(deps.devSecret, user, { ttlSeconds: DEV_TOKEN_TTL_S }) };
  });
  for (const [name, upstream] of Object.entries(deps.upstreams)) {
    await app.register(proxy, { upstream, prefix: `/api/${name}`, rewritePrefix: '' });
  }
  return app;
}
