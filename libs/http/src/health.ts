import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Ajv } from 'ajv';
import type { Options as AjvOptions, ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';
import Fastify, { LogController } from 'fastify';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { RippleError } from '@ripple/errors';
import { Histogram } from '@ripple/telemetry';
import type { Registry } from '@ripple/telemetry';
import { declareSharedErrors } from './contract.js';
import { HttpErrors } from './error-kinds.js';
import { clientError, frameworkError, installErrorHandling } from './errors.js';
import { OperationalSchemas, registerOpenApi } from './openapi.js';
import type { OpenApiInfo } from './openapi.js';

/** A number as a client writes it in a URL: decimal digits, an optional sign and fraction. */
const DECIMAL = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/;

/**
 * Holds the numbers of a query string or of path parameters to their decimal form before `validate`
 * (Ajv, coercing) sees them: Ajv coerces any text that JavaScript reads as a number, so
 * `?limit=0x10`, `1e1`, ` 5` or `5.` passed as 16, 10 and 5. Such a value fails like any other
 * ill-typed one (400 VALIDATION_FAILED, `field: query.limit`). Only the top-level properties
 * typed `integer` or `number` are checked (a repeated parameter: each of its values).
 */
function decimalNumbersOnly(schema: unknown, validate: ValidateFunction): ValidateFunction {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
  const numeric = Object.keys(properties).filter((name) => {
    const type = properties[name]?.type;
    return type === 'integer' || type === 'number';
  });
  if (numeric.length === 0) return validate;
  const checked = ((data: Record<string, unknown> | undefined) => {
    for (const name of numeric) {
      const raw = data?.[name];
      const values = Array.isArray(raw) ? raw : [raw];
      if (values.some((v) => typeof v === 'string' && !DECIMAL.test(v))) {
        checked.errors = [
          {
            instancePath: `/${name}`,
            schemaPath: `#/properties/${name}/type`,
            keyword: 'type',
            params: { type: properties[name]?.type },
            message: 'must be a decimal number',
          },
        ];
        return false;
      }
    }
    const valid = validate(data);
    checked.errors = validate.errors;
    return valid;
  }) as ValidateFunction;
  return checked;
}

/** A named dependency check for /readyz; it rejects when the dependency is unreachable. */
export type ReadinessCheck = () => Promise<void>;

/**
 * /healthz: the process is alive. /readyz: every dependency answers, 200 `{status: 'ready',
 * checks}`; otherwise 503 with the shared error body, `NOT_READY` naming the failing checks or
 * `DRAINING`. Why a check failed (its error, which may name a host, a port or a URL) goes to the
 * log at warn, never into the answer. /metrics: Prometheus text format.
 */
export function installOperationalRoutes(
  app: FastifyInstance,
  opts: { checks: Record<string, ReadinessCheck>; metrics: Registry; isDraining?: () => boolean },
): void {
  app.get('/healthz', { schema: OperationalSchemas.healthz }, () => ({ status: 'ok' }));
  app.get('/readyz', { schema: OperationalSchemas.readyz }, async (request, reply) => {
    const failed: string[] = [];
    await Promise.all(
      Object.entries(opts.checks).map(async ([name, check]) => {
        try {
          await check();
        } catch (err) {
          failed.push(name);
          request.log.warn({ check: name, err }, 'readiness check failed');
        }
      }),
    );
    if (opts.isDraining?.() === true) throw HttpErrors.draining.error('the process is shutting down');
    if (failed.length > 0) throw HttpErrors.notReady.error(`failing checks: ${failed.sort().join(', ')}`);
    return reply.send({ status: 'ready', checks: Object.fromEntries(Object.keys(opts.checks).map((n) => [n, 'ok'])) });
  });
  app.get('/metrics', { schema: OperationalSchemas.metrics }, async (_request, reply) =>
    reply.header('content-type', opts.metrics.contentType).send(await opts.metrics.metrics()),
  );
}

/**
 * `http_request_duration_seconds{method, route, status_code}`: every answered request, by route
 * template (`/posts/:postId`, so ids never become labels); unknown URLs count as `route="404"`.
 */
function installRequestMetrics(app: FastifyInstance, registry: Registry): void {
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests from arrival to the end of the answer, by method, route and status',
    labelNames: ['method', 'route', 'status_code'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  app.addHook('onResponse', (request, reply, done) => {
    duration.observe(
      { method: request.method, route: request.routeOptions.url ?? '404', status_code: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
    done();
  });
}

/** The TCP port the app listens on (useful with PORT=0). */
export function listeningPort(app: FastifyInstance): number {
  return (app.server.address() as AddressInfo).port;
}

/**
 * A fastify app with error handling and the operational routes, for a service to add routes to.
 * Unknown body properties are rejected (not silently removed), so a typo is a 400, not data loss.
 */
export interface ServiceShellOptions {
  readonly logger: FastifyBaseLogger;
  readonly metrics: Registry;
  readonly checks: Record<string, ReadinessCheck>;
  readonly bodyLimit?: number;
  readonly isDraining?: () => boolean;
  /**
   * Recognises failures of infrastructure that a retry may cure (no database connection free
   * within the pool's wait, the database unreachable) and returns them as coded, retriable 503
   * errors (`OverloadError`, DB_UNAVAILABLE); `undefined` for anything else, which stays a 500.
   * Applies to every route, including those that query without a transaction.
   */
  readonly classifyError?: (err: unknown) => RippleError | undefined;
  /** Serve an OpenAPI document at /docs/json (the operational routes and every later route). */
  readonly openapi?: OpenApiInfo;
}

/**
 * One log line per request, written when it is answered, with the request, the answer's status
 * and the time taken. Fastify's default is two lines (arrival and answer): on the write path the
 * second line per request was a second synchronous write to stdout and a quarter of the logger's
 * cost, for what the answer's line says anyway. A 503 gets no line: past capacity a line per
 * refused request would cost what refusing saves; `http_requests_shed_total` and
 * `http_request_duration_seconds{status_code="503"}` count them, and a 503 that is a fault
 * (DB_UNAVAILABLE) is logged as an error by the error handler.
 */
class OneLinePerRequest extends LogController {
  override incomingRequest(): void {
    // Logged with the answer.
  }
  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request) || reply.statusCode === 503) return;
    const line = { req: request, res: reply, responseTime: reply.elapsedTime };
    if (error) reply.log.error({ ...line, err: error }, 'request errored');
    else reply.log.info(line, 'request completed');
  }
}

/**
 * The router's limit on one path parameter: Node refuses a request line and headers over 16 KiB
 * (431 `REQUEST_HEADERS_TOO_LARGE`) first, so every parameter reaches the route's own schema,
 * which names it (400 `VALIDATION_FAILED`, `field: params.userId`) instead of fastify's 414.
 */
const MAX_PARAM_LENGTH = 16 * 1024;

/**
 * An `onRequest` hook for every request: an HTTP/1.1 request must carry a Host header (RFC 9112
 * §3.2), so one without is 400 REQUEST_MALFORMED with `field: headers.host`. HTTP/1.0 needs none.
 */
function refuseHostless(request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) {
  if (request.headers.host !== undefined || request.raw.httpVersion !== '1.1') {
    done();
    return;
  }
  done(HttpErrors.requestMalformed.error('an HTTP/1.1 request must carry a Host header', { field: 'headers.host' }));
}

/**
 * Refuses every request that arrives while the app closes (`app.close()`: SIGTERM), which can
 * only come on a connection kept alive from before, with 503 DRAINING in the shared error body,
 * `Retry-After` and `Connection: close`, so the client retries on a new connection, which reaches
 * another replica. Fastify's own answer to it (`return503OnClosing`, turned off) has a body of
 * fastify's shape and no `Retry-After`. Added first, so such a request costs no token check, no
 * rate-limit round trip and is not counted as shed.
 */
function refuseWhileClosing(app: FastifyInstance): void {
  let closing = false;
  // Fastify marks itself closing right before its preClose hooks, and stops listening after them.
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onRequest', (_request, reply, done) => {
    if (!closing) {
      done();
      return;
    }
    void reply.header('connection', 'close');
    done(HttpErrors.draining.error('the server is shutting down: retry on a new connection'));
  });
}

export function serviceShell(opts: ServiceShellOptions): FastifyInstance {
  // Path parameters are validated by each route's schema (a user id has up to 128 characters):
  // fastify's own limit (100) would answer a valid id with a 414 before validation. The router's
  // and Node's own refusals answer the shared error body too (`GlobalErrors`).
  const app = Fastify({
    loggerInstance: opts.logger,
    logController: new OneLinePerRequest(),
    bodyLimit: opts.bodyLimit ?? 64 * 1024,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: frameworkError,
    clientErrorHandler: clientError,
    // No HEAD twin of every GET: what is served is what the OpenAPI document lists, and a HEAD
    // of a documented path is 404 NOT_FOUND like any other method it does not list.
    exposeHeadRoutes: false,
    // Node answers an HTTP/1.1 request without Host with a bare 400 and no body; `refuseHostless`
    // answers it in the shared shape instead.
    http: { requireHostHeader: false },
    // `refuseWhileClosing` answers in the shared shape instead.
    return503OnClosing: false,
  });
  refuseWhileClosing(app);
  app.addHook('onRequest', refuseHostless);
  // JSON bodies are typed already, so `{"body": 1}` is a 400, not the string "1"; query strings,
  // params and headers are text and are coerced to their schema types (`?limit=20`). Lengths
  // count UTF-16 code units (`unicode: false`), as the event catalog's checks and JavaScript do:
  // Ajv's default counts code points, so text that fit here could break its event's bound.
  const ajv = (coerceTypes: AjvOptions['coerceTypes']) => {
    const instance = new Ajv({
      removeAdditional: false,
      useDefaults: true,
      coerceTypes,
      allErrors: false,
      unicode: false,
    });
    addFormats.default(instance);
    return instance;
  };
  const strict = ajv(false);
  const coercing = ajv('array');
  app.setValidatorCompiler(({ schema, httpPart }) =>
    httpPart === 'body' ? strict.compile(schema) : decimalNumbersOnly(schema, coercing.compile(schema)),
  );
  installErrorHandling(app, opts.classifyError);
  // An `Expect` Node cannot meet (anything but 100-continue): 417 in the shared body, where Node's
  // own answer has none.
  app.server.on('checkExpectation', (_request: IncomingMessage, response: ServerResponse) => {
    const { code, status } = HttpErrors.expectationFailed;
    const text = JSON.stringify({ code, message: 'cannot meet the Expect header: only 100-continue is supported' });
    response.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      connection: 'close',
    });
    response.end(text);
  });
  installRequestMetrics(app, opts.metrics);
  app.addHook('onRoute', declareSharedErrors);
  const operational = {
    checks: opts.checks,
    metrics: opts.metrics,
    ...(opts.isDraining && { isDraining: opts.isDraining }),
  };
  if (opts.openapi) {
    registerOpenApi(app, opts.openapi);
    // In a plugin, so that it loads after @fastify/swagger, whose onRoute hook documents them.
    void app.register((scope, _opts, done) => {
      installOperationalRoutes(scope, operational);
      done();
    });
  } else {
    installOperationalRoutes(app, operational);
  }
  return app;
}
