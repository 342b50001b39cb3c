/**
 * What never leaves a process in clear: the bearer tokens clients may send in a URL (browsers
 * cannot set headers on WebSocket and EventSource requests) and the Authorization header.
 * Logs (pino `redact`), spans (the HTTP instrumentation's `redactedQueryParamsServer` and a
 * `@fastify/otel` request hook) and error messages all use the helpers here.
 */

/**
 * The value that replaces a secret. The same literal `@opentelemetry/instrumentation-http` writes
 * into `url.query`, so logs and spans show one marker.
 */
export const REDACTED = 'REDACTED';

/** Query parameters that carry credentials: the gateway's `/ws` and `/sse` read these two. */
export const SECRET_QUERY_PARAMS: readonly string[] = ['access_token', 'subscription_token'];

const secretParams = new Set(SECRET_QUERY_PARAMS);

function keyOf(pair: string): string {
  const raw = pair.split('=', 1)[0] ?? '';
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}

/**
 * `url` (a request target such as `/sse?channels=a&access_token=…`, or an absolute URL) with the
 * value of every secret query parameter replaced by {@link REDACTED}; everything else is kept as
 * it was written. A percent-encoded name (`access%5Ftoken`) counts, since the query parser
 * decodes it too.
 */
export function redactUrl(url: string): string {
  const start = url.indexOf('?');
  if (start === -1) return url;
  const hash = url.indexOf('#', start);
  const end = hash === -1 ? url.length : hash;
  const query = url
    .slice(start + 1, end)
    .split('&')
    .map((pair) =>
      pair.includes('=') && secretParams.has(keyOf(pair)) ? `${pair.split('=', 1)[0]}=${REDACTED}` : pair,
    )
    .join('&');
  return `${url.slice(0, start + 1)}${query}${url.slice(end)}`;
}

const secretInText = new RegExp(`\\b((?:${SECRET_QUERY_PARAMS.join('|')})=)[^&#\\s"'<>]+`, 'gi');
const bearerInText = /\b(Bearer\s+)[A-Za-z0-9\-._~+/]+=*/gi;

/**
 * Free text (an error message, a stack trace) with secret query parameters and `Bearer` tokens
 * redacted, for messages that may echo a URL or a header.
 */
export function redactText(text: string): string {
  return text.replace(secretInText, `$1${REDACTED}`).replace(bearerInText, `$1${REDACTED}`);
}
