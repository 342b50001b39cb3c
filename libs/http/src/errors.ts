import type { FastifyError, FastifyInstance } from 'fastify';
import { isDatabaseUnavailable } from '@ripple/db';
import { isRippleError } from '@ripple/errors';
import { redactText, redactUrl } from '@ripple/telemetry';
import { HttpErrors } from './error-kinds.js';

/** The body of every 4xx/5xx answer: a stable machine-readable code and a human message. */
export interface ErrorBody {
  code: string;
  message: string;
  /** For validation errors: the offending field, as a JSON path (`body.text`). */
  field?: string;
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

/** Maps every error to ErrorBody: coded errors keep their code; schema failures become VALIDATION_FAILED. */
export function installErrorHandling(app: FastifyInstance): void {
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
    if (isRippleError(err)) {
      // Shed requests are counted (http_requests_shed_total), not logged one by one: under
      // overload, an error line per refused request would cost what shedding saves.
      if (err.status >= 500 && err.code !== 'OVERLOADED') request.log.error({ err }, 'request failed');
      const body: ErrorBody = { code: err.code, message: err.message };
      if (err.field !== undefined) body.field = err.field;
      return reply.status(err.status).send(body);
    }
    // The database is down or restarting: nothing was written, the client may retry (not a bug).
    if (isDatabaseUnavailable(err)) {
      request.log.warn({ err }, 'database unavailable');
      return reply
        .status(HttpErrors.databaseUnavailable.status)
        .header('retry-after', '1')
        .send({
          code: HttpErrors.databaseUnavailable.code,
          message: 'database unavailable, retry later',
        } satisfies ErrorBody);
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
