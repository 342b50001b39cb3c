import { STATUS_CODES } from 'node:http';
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { isRippleError } from '@ripple/errors';
import type { ErrorKind, RippleError } from '@ripple/errors';
import { redactText, redactUrl } from '@ripple/telemetry';
import { HttpErrors } from './error-kinds.js';
import { OverloadError } from './overload.js';
import type { ShedReason } from './overload.js';

/** The body of every 4xx/5xx answer: a stable machine-readable code and a human message. */
export interface ErrorBody {
  code: string;
  message: string;
  /** For validation errors: the offending field, as a JSON path (`body.text`). */
  field?: string;
  /** For a shed request (503 OVERLOADED): why, as `http_requests_shed_total` counts it. */
  reason?: ShedReason;
}

function fieldOf(err: FastifyError): string | undefined {
  const first = err.validation?.[0];
  if (!first) return undefined;
  const context = err.validationContext === 'querystring' ? 'query' : (err.validationContext ?? 'body');
  const missing = (first.params as { missingProperty?: string }).missingProperty;
  const path = first.instancePath.replace(/^\//, '').replace(/\//g, '.');
  const leaf = [path, missing].filter((p) => p !== undefined && p !== '').join('.');
  return leaf === '' ? context : `${context}.${leaf}`;
}

/**
 * How a coded answer is logged: a 5xx fault (INTERNAL, DB_UNAVAILABLE) at error; an expected
 * refusal (`refusal` kinds: GW_DRAINING, NOT_READY, DRAINING) at info, since nothing failed; a
 * shed request (OVERLOADED) not at all: it is counted (http_requests_shed_total), and under
 * overload a line per refused request would cost what shedding saves. 4xx answers get no line of
 * their own (the request's line has the status).
 */
function logCoded(request: FastifyRequest, coded: RippleError, err: unknown): void {
  if (coded.code === HttpErrors.overloaded.code || coded.status < 500) return;
  if (coded.refusal) request.log.info({ code: coded.code, reason: coded.message }, 'request refused');
  else request.log.error({ err }, 'request failed');
}

/**
 * Maps every error to ErrorBody: coded errors keep their code; schema failures become
 * VALIDATION_FAILED; what `classify` recognises (transient infrastructure failures) gets its
 * code; anything else is a 500 INTERNAL.
 */
export function installErrorHandling(app: FastifyInstance, classify?: (err: unknown) => RippleError | undefined): void {
  app.setErrorHandler<FastifyError>((err, request, reply) => {
    if (err.validation) {
      const field = fieldOf(err);
      const body: ErrorBody = {
        code: HttpErrors.validationFailed.code,
        message: `${field ?? 'input'}: ${err.message}`,
      };
      if (field !== undefined) body.field = field;
      return reply.status(HttpErrors.validationFailed.status).send(body);
    }
    const coded = isRippleError(err) ? err : classify?.(err);
    if (coded) {
      logCoded(request, coded, err);
      const body: ErrorBody = { code: coded.code, message: coded.message };
      if (coded.field !== undefined) body.field = coded.field;
      if (coded instanceof OverloadError) body.reason = coded.reason;
      // Every retriable 503 says when to retry (a draining node, not ready, overload, an outage);
      // a hook that knows better (overload's RETRY_AFTER) has set it already.
      if (coded.status === 503 && coded.retriable && !reply.hasHeader('retry-after'))
        void reply.header('retry-after', '1');
      return reply.status(coded.status).send(body);
    }
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      request.log.error({ err }, 'request failed');
      return reply
        .status(HttpErrors.internal.status)
        .send({ code: HttpErrors.internal.code, message: 'internal error' } satisfies ErrorBody);
    }
    // Fastify's own client errors (bad JSON, wrong content type, body too large, a bad URL) keep
    // their code; a message that echoes the URL loses its tokens.
    return reply.status(status).send({ code: err.code, message: redactText(err.message) } satisfies ErrorBody);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(HttpErrors.notFound.status).send({
      code: HttpErrors.notFound.code,
      message: `no route ${request.method} ${redactUrl(request.url)}`,
    } satisfies ErrorBody),
  );
}

/**
 * Fastify's `frameworkErrors`: the router's own refusals (a URL that is not valid
 * percent-encoding, 400 `FST_ERR_BAD_URL`; a path parameter past `maxParamLength`, 414
 * `FST_ERR_MAX_PARAM_LENGTH`), which fastify would otherwise answer with a body of its own shape,
 * answered with `ErrorBody` like every other error. Anything else is a 500 `INTERNAL`.
 */
export function frameworkError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const kind = [HttpErrors.urlMalformed, HttpErrors.paramTooLong].find((k) => k.code === err.code);
  if (!kind) {
    request.log.error({ err }, 'request failed');
    void reply
      .status(HttpErrors.internal.status)
      .send({ code: HttpErrors.internal.code, message: 'internal error' } satisfies ErrorBody);
    return;
  }
  void reply.status(kind.status).send({ code: kind.code, message: redactText(err.message) } satisfies ErrorBody);
}

function clientErrorKind(code: string | undefined): ErrorKind {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return HttpErrors.requestTimeout;
  if (code === 'HPE_HEADER_OVERFLOW') return HttpErrors.headersTooLarge;
  return HttpErrors.requestMalformed;
}

/**
 * Fastify's `clientErrorHandler`: a request Node's HTTP parser refused before fastify saw it
 * (malformed, too slow, headers and URL over the 16 KiB limit) is answered with `ErrorBody`
 * (`REQUEST_MALFORMED` 400, `REQUEST_TIMEOUT` 408, `REQUEST_HEADERS_TOO_LARGE` 431), then the
 * connection is closed, as fastify's default handler does. When the request was answered already
 * (the parser failed on its body), the connection is closed without a second answer, as Node's
 * own handler does.
 */
export function clientError(err: NodeJS.ErrnoException, socket: Socket): void {
  // A reset connection has no one to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // The parser can fail on a body after the route answered its request (a Transfer-Encoding
  // without chunked last): that answer stands, and a second one would follow it on the wire.
  if ((socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage?.headersSent) {
    socket.destroy(err);
    return;
  }
  const kind = clientErrorKind(err.code);
  const message =
    kind === HttpErrors.headersTooLarge
      ? 'the request line and headers exceed the 16 KiB limit'
      : kind === HttpErrors.requestTimeout
        ? 'the request did not arrive in time'
        : 'the HTTP request could not be parsed';
  writeErrorAnswer(socket, kind.status, { code: kind.code, message });
  socket.destroy(err);
}

/**
 * Writes an HTTP answer with `body` (the shared error shape) and `headers` (name → value, as
 * written) straight to a socket that no fastify reply owns (a request Node's parser refused, a
 * refused WebSocket handshake), with `Connection: close`. The caller ends or destroys the socket.
 */
export function writeErrorAnswer(
  socket: Duplex,
  status: number,
  body: ErrorBody,
  headers: Readonly<Record<string, string>> = {},
): void {
  if (!socket.writable) return;
  const text = JSON.stringify(body);
  const extra = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
  socket.write(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Length: ${Buffer.byteLength(text)}\r\n` +
      `Content-Type: application/json; charset=utf-8\r\n${extra.join('')}Connection: close\r\n\r\n${text}`,
  );
}
