/**
 * Errors are values with stable codes (fastify's lib/errors.js is the model): clients and logs get
 * `code`; HTTP routes answer with `status`; consumers use `retriable` to choose retry or dead-letter.
 */
export class RippleError extends Error {
  readonly code: string;
  readonly status: number;
  readonly retriable: boolean;
  /** For input errors: the offending field as a JSON path (`query.cursor`). */
  readonly field: string | undefined;
  /** An expected refusal (shedding, draining, not ready), not a fault: never logged as an error. */
  readonly refusal: boolean;

  constructor(
    code: string,
    message: string,
    opts: { status?: number; retriable?: boolean; refusal?: boolean; field?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RippleError';
    this.code = code;
    this.status = opts.status ?? 500;
    this.retriable = opts.retriable ?? false;
    this.refusal = opts.refusal ?? false;
    this.field = opts.field;
  }
}

export function isRippleError(err: unknown): err is RippleError {
  return err instanceof RippleError;
}

/**
 * One kind of error, declared once: its stable code and HTTP status. Code that fails throws
 * `kind.error(message)`; an HTTP route lists the kinds it can answer with, and its OpenAPI
 * responses are generated from that list, so the contract and the behaviour share one source.
 */
export interface ErrorKind {
  readonly code: string;
  /** The HTTP status answered for it (4xx/5xx). */
  readonly status: number;
  /** Whether the failure may pass by itself (decides retry vs dead-letter queue). */
  readonly retriable: boolean;
  /**
   * An expected refusal rather than a fault: the service chose not to serve now (it sheds load,
   * drains, is not ready). A 503 of this kind is logged at info, not as an error.
   */
  readonly refusal: boolean;
  /** A RippleError of this kind. `field` is the offending input as a JSON path (`query.cursor`). */
  error(message: string, opts?: { field?: string; cause?: unknown }): RippleError;
}

/**
 * Declares an error kind (`errorKind('POST_NOT_FOUND', 404)`); `retriable` and `refusal` default
 * to false.
 */
export function errorKind(
  code: string,
  status: number,
  opts: { retriable?: boolean; refusal?: boolean } = {},
): ErrorKind {
  const retriable = opts.retriable ?? false;
  const refusal = opts.refusal ?? false;
  return {
    code,
    status,
    retriable,
    refusal,
    error: (message, more = {}) =>
      new RippleError(code, message, {
        status,
        retriable,
        refusal,
        ...(more.field !== undefined && { field: more.field }),
        ...(more.cause !== undefined && { cause: more.cause }),
      }),
  };
}
