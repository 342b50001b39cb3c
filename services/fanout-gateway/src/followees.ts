import { Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Pool } from 'undici';
import { RippleError } from '@ripple/errors';
import { SpanKind, SpanStatusCode, context, trace, traceHeaders, tracer } from '@ripple/telemetry';
import type { FolloweeSource } from './feed.js';

const FollowingIds = TypeCompiler.Compile(
  Type.Object({ ids: Type.Array(Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' })) }),
);

const unavailable = (message: string, cause?: unknown) =>
  new RippleError('GW_FEED_UNAVAILABLE', `could not load the followed users: ${message}`, {
    status: 503,
    retriable: true,
    cause,
  });

/**
 * Why a request to post-service failed, in words a client may read: no error text (it can hold
 * internal addresses), only a timeout or the system error code.
 */
function failure(err: unknown, timeoutMs: number): string {
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return `post-service did not answer within ${timeoutMs} ms`;
  }
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string'
    ? `post-service could not be reached (${code})`
    : 'the request to post-service failed';
}

/**
 * Connections one gateway node keeps open to post-service for followee loads. Loads beyond it
 * queue in the node (within their timeout) instead of piling up in post-service's database pool.
 */
export const FEED_LOAD_CONNECTIONS = 16;

/** A FolloweeSource over HTTP, holding a connection pool until `close`. */
export interface HttpFolloweeSource extends FolloweeSource {
  /** Closes the pool's connections (waits for loads in flight). */
  close(): Promise<void>;
}

/**
 * FolloweeSource over post-service's `GET /me/following/ids`, called with the user's own access
 * token (so post-service authorizes it like any request of that user), within `timeoutMs` (queueing
 * for a connection included). Requests go through an undici Pool of at most `connections`
 * kept-alive connections: on a loaded node `fetch` spent about 4 ms of CPU per load (its web
 * streams and per-request set-up), more than everything else a feed subscription costs. One
 * `gateway.feed.load` client span, whose context travels in `traceparent`.
 */
export function httpFolloweeSource(
  baseUrl: string,
  timeoutMs: number,
  connections = FEED_LOAD_CONNECTIONS,
): HttpFolloweeSource {
  const url = new URL('/me/following/ids', baseUrl);
  const pool = new Pool(url.origin, { connections });
  return {
    close: () => pool.close(),
    async following(userId, credential) {
      const span = tracer().startSpan('gateway.feed.load', {
        kind: SpanKind.CLIENT,
        attributes: { 'enduser.id': userId },
      });
      try {
        const res = await context.with(trace.setSpan(context.active(), span), () =>
          pool.request({
            method: 'GET',
            path: url.pathname,
            headers: { authorization: `Bearer ${credential}`, ...traceHeaders() },
            signal: AbortSignal.timeout(timeoutMs),
          }),
        );
        span.setAttribute('http.response.status_code', res.statusCode);
        if (res.statusCode !== 200) {
          await res.body.dump();
          throw unavailable(`post-service answered ${res.statusCode}`);
        }
        const body: unknown = await res.body.json();
        if (!FollowingIds.Check(body)) throw unavailable('post-service answered an unexpected body');
        return body.ids;
      } catch (err) {
        span.setStatus({ code: SpanStatusCode.ERROR });
        throw err instanceof RippleError ? err : unavailable(failure(err, timeoutMs), err);
      } finally {
        span.end();
      }
    },
  };
}
