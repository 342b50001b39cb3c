import { Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
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
 * FolloweeSource over post-service's `GET /me/following/ids`, called with the user's own access
 * token (so post-service authorizes it like any request of that user), within `timeoutMs`. One
 * `gateway.feed.load` client span, whose context travels in `traceparent`.
 */
export function httpFolloweeSource(baseUrl: string, timeoutMs: number): FolloweeSource {
  const url = new URL('/me/following/ids', baseUrl).toString();
  return {
    async following(userId, credential) {
      const span = tracer().startSpan('gateway.feed.load', {
        kind: SpanKind.CLIENT,
        attributes: { 'enduser.id': userId },
      });
      try {
        const res = await context.with(trace.setSpan(context.active(), span), () =>
          fetch(url, {
            headers: { authorization: `Bearer ${credential}`, ...traceHeaders() },
            signal: AbortSignal.timeout(timeoutMs),
          }),
        );
        span.setAttribute('http.response.status_code', res.status);
        if (res.status !== 200) throw unavailable(`post-service answered ${res.status}`);
        const body: unknown = await res.json();
        if (!FollowingIds.Check(body)) throw unavailable('post-service answered an unexpected body');
        return body.ids;
      } catch (err) {
        span.setStatus({ code: SpanStatusCode.ERROR });
        throw err instanceof RippleError ? err : unavailable(err instanceof Error ? err.name : 'request failed', err);
      } finally {
        span.end();
      }
    },
  };
}
