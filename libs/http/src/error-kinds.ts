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
  overloaded: errorKind('OVERLOADED', 503, { retriable: true }),
  /** The service's database could not be reached (down, restarting): nothing was written; retry. */
  databaseUnavailable: errorKind('DB_UNAVAILABLE', 503, { retriable: true }),
  // Fastify's own answers to a malformed body keep fastify's codes.
  bodyInvalidJson: errorKind('FST_ERR_CTP_INVALID_JSON_BODY', 400),
  bodyEmpty: errorKind('FST_ERR_CTP_EMPTY_JSON_BODY', 400),
  bodyLengthMismatch: errorKind('FST_ERR_CTP_INVALID_CONTENT_LENGTH', 400),
  bodyTooLarge: errorKind('FST_ERR_CTP_BODY_TOO_LARGE', 413),
  bodyMediaType: errorKind('FST_ERR_CTP_INVALID_MEDIA_TYPE', 415),
} as const;
