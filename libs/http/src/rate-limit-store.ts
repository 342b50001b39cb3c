import type { FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { Redis } from 'ioredis';

/**
 * Adds ARGV[1] to the counter KEYS[1]; a counter this created (its value is what was added) gets
 * the window, ARGV[2] ms, as its expiry (a fixed window from its first request, as
 * @fastify/rate-limit's own Redis store does). Returns {count, ms until the window ends}.
 */
const SETTLE_LUA = `
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if count == tonumber(ARGV[1]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]); ttl = tonumber(ARGV[2]) end
return {count, ttl}`;

/** Share of the limit a replica may count locally before it asks Redis on every request. */
export const RATE_LIMIT_LOCAL_SHARE = 0.1;

interface Counter {
  /** The counter in Redis as last read (every replica's settled requests). */
  settled: number;
  /** Requests this replica admitted and has not yet sent to Redis. */
  pending: number;
  /**
   * Requests sent to Redis by a settlement not yet answered. Replies come in the order the calls
   * went out, so when a later call's reply arrives these are not in its count yet.
   */
  settling: number;
  /** When the window ends (`performance.now()` time). */
  endsAt: number;
  /** The window's length, in ms (a counter the settlement creates expires after it). */
  windowMs: number;
}

type IncrCallback = (err: Error | null, res?: { current: number; ttl: number }) => void;

/** What @fastify/rate-limit calls on its `store`. */
export interface RateLimitStore {
  incr(key: string, cb: IncrCallback, timeWindow: number, max: number): void;
  /**
   * The store of a route with a limit of its own. The plugin passes the route's merged options
   * with the route under `routeInfo` (its type declarations say otherwise).
   */
  child(routeOptions: { routeInfo?: { method?: string | string[]; url?: string } }): RateLimitStore;
}

export interface SettledRateLimitStore {
  /** The class to hand @fastify/rate-limit as `store` (it constructs one with its options). */
  readonly Store: FastifyRateLimitStoreCtor & (new () => RateLimitStore);
  /** Adds what is still pending to Redis and stops settling (the app closes). */
  close(): Promise<void>;
}

/**
 * A @fastify/rate-limit store whose counters live in Redis (shared by every replica, fixed
 * windows) but are mostly counted locally: a replica asks Redis on the request that opens a
 * user's window on it, and on every request once the user is within
 * {@link RATE_LIMIT_LOCAL_SHARE} of the limit (or has that many requests not yet settled);
 * in between it counts in memory and adds its counts to Redis every `settleMs` (one pipelined
 * script per user). Far from the limit, a request costs no Redis round trip.
 *
 * The approximation: a replica's local counts reach Redis up to `settleMs` late, and each holds at
 * most `floor(max × RATE_LIMIT_LOCAL_SHARE)` of them per user, so across N replicas a user may be
 * admitted up to `(N − 1) × floor(max × RATE_LIMIT_LOCAL_SHARE)` requests over the limit in one
 * window (with one replica, none). A limit under 10 is exact (every request asks Redis).
 *
 * Errors: a failing Redis call fails `incr` (the plugin's `skipOnError` then lets the request
 * pass); a failed settlement keeps its counts pending and retries at the next one.
 */
export function settledRateLimitStore(redis: Redis, keyPrefix: string, settleMs: number): SettledRateLimitStore {
  const counters = new Map<string, Counter>();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const call = (key: string, n: number, window: number): Promise<[number, number]> =>
    redis.eval(SETTLE_LUA, 1, key, n, window) as Promise<[number, number]>;

  async function settle(): Promise<void> {
    timer = undefined;
    const batch = [...counters].filter(([, c]) => c.pending > 0).map(([key, c]) => [key, c, c.pending] as const);
    const pipeline = redis.pipeline();
    for (const [key, c, n] of batch) {
      pipeline.eval(SETTLE_LUA, 1, key, n, c.windowMs);
      c.pending -= n;
      c.settling += n;
    }
    const results = batch.length > 0 ? await pipeline.exec().catch(() => null) : [];
    const now = performance.now();
    batch.forEach(([, c, n], i) => {
      c.settling -= n;
      const [err, reply] = results?.[i] ?? [new Error('no reply')];
      if (err || !reply) {
        c.pending += n; // the next settlement adds it
        return;
      }
      const [count, ttl] = reply as [number, number];
      c.settled = count;
      c.endsAt = now + ttl;
    });
    // Forget windows that ended with nothing pending.
    for (const [key, c] of counters) if (c.endsAt <= now && c.pending + c.settling === 0) counters.delete(key);
    schedule();
  }
  /** Settles (and forgets ended windows) every `settleMs` while any counter is known. */
  function schedule(): void {
    if (timer || closed || counters.size === 0) return;
    timer = setTimeout(() => void settle(), settleMs);
    timer.unref();
  }

  // @fastify/rate-limit constructs it with its options (unused here); `child` sets the prefix.
  class Store implements RateLimitStore {
    prefix = keyPrefix;

    incr(id: string, cb: IncrCallback, timeWindow: number, max: number): void {
      const key = this.prefix + id;
      const now = performance.now();
      const local = Math.floor(max * RATE_LIMIT_LOCAL_SHARE);
      const c = counters.get(key);
      if (c && c.endsAt > now && c.pending + c.settling < local && c.settled + c.pending + c.settling < max - local) {
        c.pending++;
        schedule();
        cb(null, { current: c.settled + c.pending + c.settling, ttl: Math.ceil(c.endsAt - now) });
        return;
      }
      call(key, 1, timeWindow).then(
        ([count, ttl]) => {
          const at = performance.now();
          // This replica's counts not yet in Redis (pending, and settling: a settlement sent
          // after this call) are on top of what Redis holds.
          const known = counters.get(key) ?? { settled: 0, pending: 0, settling: 0, endsAt: 0, windowMs: timeWindow };
          known.settled = count;
          known.endsAt = at + ttl;
          counters.set(key, known);
          schedule();
          cb(null, { current: count + known.pending + known.settling, ttl });
        },
        (err: unknown) => cb(err instanceof Error ? err : new Error(String(err))),
      );
    }

    child(routeOptions: { routeInfo?: { method?: string | string[]; url?: string } }): RateLimitStore {
      const store = new Store();
      const route = routeOptions.routeInfo;
      store.prefix = `${this.prefix}${[route?.method ?? ''].flat().join(',')}${route?.url ?? ''}-`;
      return store;
    }
  }

  return {
    Store,
    async close() {
      closed = true;
      if (timer) clearTimeout(timer);
      timer = undefined;
      await settle();
    },
  };
}
