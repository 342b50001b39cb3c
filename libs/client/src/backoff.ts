/** Reconnect delays: exponential backoff with full jitter and a cap. */
export interface BackoffOptions {
  /** Ceiling of the first retry's delay, in ms (default 500). */
  readonly initialMs?: number;
  /** Largest delay, in ms (default 20000). */
  readonly maxMs?: number;
}

/**
 * The delay before retry number `attempt` (0 for the first), in ms: a uniform random value in
 * [0, min(maxMs, initialMs * 2^attempt)) ("full jitter"), so that many clients dropped at once
 * do not come back at once. `random` returns [0, 1) like Math.random.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random = Math.random): number {
  const { initialMs = 500, maxMs = 20_000 } = options;
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
