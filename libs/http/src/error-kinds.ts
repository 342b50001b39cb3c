import { errorKind } from '@ripple/errors';

/**
 * The error kinds that the shared HTTP plumbing answers with (authentication, validation, rate
 * limits, idempotency, pagination, overload), declared once: the code that fails throws them and
 * `routeSchema` lists them in every route's OpenAPI responses.
 */
export const HttpErrors = {
  /** A request part failed its JSON Schema; `field` names it. */
  validationFailed: errorKind('VALIDATION_FAILED', 400),
  cursorInvalid: errorKind('CURSOR_INVALID', 400),
  idempotencyKeyReused: errorKind('IDEMPOTENCY_KEY_REUSED', 422),
  tokenMissing: errorKind('AUTH_TOKEN_MISSING', 401),
  tokenInvalid: errorKind('AUTH_TOKEN_INVALID', 401),
  tokenExpired: errorKind('AUTH_TOKEN_EXPIRED', 401),
  notFound: errorKind('NOT_FOUND', 404),
  rateLimited: errorKind('RATE_LIMITED', 429, { retriable: true }),
  internal: errorKind('INTERNAL', 500),
  overloaded: errorKind('OVERLOADED', 503, { retriable: true, refusal: true }),
  /** The database cannot be reached (refused, dropped, timed out); a retry may succeed. */
  databaseUnavailable: errorKind('DB_UNAVAILABLE', 503, { retriable: true }),
  /** `/readyz`: a readiness check failed (the message names it, never why: that goes to the log). */
  notReady: errorKind('NOT_READY', 503, { retriable: true, refusal: true }),
  /**
   * The process is shutting down: `/readyz` while it drains, and any request that arrives while the
   * server closes (on a connection kept alive from before), answered with `Connection: close`.
   */
  draining: errorKind('DRAINING', 503, { retriable: true, refusal: true }),
  /** A request to a route that takes no body carried one (`field: body`): it is refused, not ignored. */
  bodyNotAllowed: errorKind('BODY_NOT_ALLOWED', 400),
  // Fastify's own answers to a malformed body keep fastify's codes.
  bodyInvalidJson: errorKind('FST_ERR_CTP_INVALID_JSON_BODY', 400),
  bodyEmpty: errorKind('FST_ERR_CTP_EMPTY_JSON_BODY', 400),
  bodyLengthMismatch: errorKind('FST_ERR_CTP_INVALID_CONTENT_LENGTH', 400),
  bodyTooLarge: errorKind('FST_ERR_CTP_BODY_TOO_LARGE', 413),
  bodyMediaType: errorKind('FST_ERR_CTP_INVALID_MEDIA_TYPE', 415),
  // Answers any request can get, whatever its route (`GlobalErrors`): the URL cannot be decoded,
  // a path parameter is longer than the router takes, the HTTP request itself is malformed.
  urlMalformed: errorKind('FST_ERR_BAD_URL', 400),
  paramTooLong: errorKind('FST_ERR_MAX_PARAM_LENGTH', 414),
  requestMalformed: errorKind('REQUEST_MALFORMED', 400),
  requestTimeout: errorKind('REQUEST_TIMEOUT', 408),
  headersTooLarge: errorKind('REQUEST_HEADERS_TOO_LARGE', 431),
  expectationFailed: errorKind('EXPECTATION_FAILED', 417),
} as const;

/**
 * What any request may be answered, whatever its method and path: an unknown route (404), a URL
 * that is not valid percent-encoding, a path parameter past the router's limit, an HTTP request
 * that cannot be parsed, too slow, or whose headers (URL included) pass Node's 16 KiB limit, an
 * `Expect` other than `100-continue` (417), a request that arrives while the server closes (503
 * DRAINING, with Retry-After). The
 * OpenAPI documents declare them once, as `x-global-responses` (see `globalResponses`).
 */
export const GlobalErrors = [
  HttpErrors.notFound,
  HttpErrors.urlMalformed,
  HttpErrors.requestMalformed,
  HttpErrors.requestTimeout,
  HttpErrors.paramTooLong,
  HttpErrors.headersTooLarge,
  HttpErrors.expectationFailed,
  HttpErrors.draining,
] as const;
