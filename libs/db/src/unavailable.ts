/**
 * Errors that mean "the database cannot be reached right now" (down, restarting, shutting down,
 * the connection dropped), as opposed to a bad query or a bug. A request that failed with one of
 * them can be retried later: HTTP answers it with 503, not 500.
 */

/** SQLSTATEs: class 08 (connection exception) and 57P01–57P03 (shut down, crashed, starting up). */
const UNAVAILABLE_SQLSTATE = /^(08[0-9A-Z]{3}|57P0[123]|53300)$/; // 53300: too many connections
/** Socket errors of a connection to the server. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
]);
/**
 * Prisma's codes for an unreachable server, a connect timeout, a closed connection. (A pool
 * timeout, P2024, is load, not an outage: libs/service answers it with 503 OVERLOADED.)
 */
const PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017']);
/** What Prisma's pg adapter reports (`meta.driverAdapterError.cause.kind`) for the same. */
const ADAPTER_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections']);
/**
 * Messages of the same failures where no code survives the wrapping (Prisma's driver adapter
 * wraps pg's errors into `Raw query failed. Code: N/A. Message: ...`).
 */
const MESSAGES = [
  "Can't reach database server",
  'Server has closed the connection', // P1017's message
  'Connection terminated',
  'connection error and is not queryable',
  'terminating connection due to administrator command',
  'the database system is shutting down',
  'the database system is starting up',
  'the database system is in recovery mode',
];

/**
 * True when `err` (or an error in its `cause` chain, up to 5 deep) says the database could not
 * be reached: a pg SQLSTATE of class 08, 57P01–57P03 or 53300, a socket error code, a Prisma
 * P1001, P1002, P1008 or P1017, a kind of Prisma's pg adapter that says so, or one of their messages.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const { code, message, cause, meta } = current as {
      code?: unknown;
      message?: unknown;
      cause?: unknown;
      meta?: { driverAdapterError?: { cause?: { kind?: unknown } } };
    };
    const kind = meta?.driverAdapterError?.cause?.kind;
    if (typeof kind === 'string' && ADAPTER_KINDS.has(kind)) return true;
    if (
      typeof code === 'string' &&
      (UNAVAILABLE_SQLSTATE.test(code) || SOCKET_CODES.has(code) || PRISMA_CODES.has(code))
    )
      return true;
    if (typeof message === 'string' && MESSAGES.some((m) => message.includes(m))) return true;
    current = cause;
  }
  return false;
}
