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

  constructor(
    code: string,
    message: string,
    opts: { status?: number; retriable?: boolean; field?: string; cause?: unknown } = {},
  ) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'RippleError';
    this.code = code;
    this.status = opts.status ?? 500;
    this.retriable = opts.retriable ?? false;
    this.field = opts.field;
  }
}

export function isRippleError(err: unknown): err is RippleError {
  return err instanceof RippleError;
}
