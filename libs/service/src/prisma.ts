import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { isDatabaseUnavailable } from '@ripple/db';
import type { RawSql, Transaction } from '@ripple/db';
import { isRippleError } from '@ripple/errors';
import type { RippleError } from '@ripple/errors';
import { HttpErrors, OverloadError } from '@ripple/http';
import { watchConnection } from '@ripple/telemetry';
import type { ConnectionHealth } from '@ripple/telemetry';

/** The database connection pool of a service's Prisma client. */
export interface PoolOptions {
  /** Most connections the pool opens (pg's `max`). */
  readonly max?: number;
  /** Longest a query waits for a connection (pg's `connectionTimeoutMillis`); 0: no limit. */
  readonly timeoutMs?: number;
}

/**
 * A pg pool on `url` bounded by `pool`. With `health`, its connections mark it up as each opens
 * and down at the `error` events of its idle clients (`watchConnection`); without it, the caller
 * handles those events.
 */
export function pgPool(url: string, pool: PoolOptions = {}, health?: ConnectionHealth): pg.Pool {
  const connections = new pg.Pool({
    connectionString: url,
    ...(pool.max !== undefined && { max: pool.max }),
    ...(pool.timeoutMs !== undefined && { connectionTimeoutMillis: pool.timeoutMs }),
  });
  if (health) watchConnection(connections, health, 'connect');
  return connections;
}

/**
 * A factory for a service's generated Prisma client on the engine-free pg driver adapter, over a
 * pg pool of its own (ended by the client's `$disconnect`). With `health`, the pool's connections
 * mark it up as each opens and down on the `error` events of idle and checked-out connections;
 * without it those are still handled (by the adapter), but silently.
 */
export function prismaClientFactory<C>(
  Client: new (options: { adapter: PrismaPg }) => C,
): (url: string, health?: ConnectionHealth, pool?: PoolOptions) => C {
  return (url, health, pool = {}) => {
    const connections = pgPool(url, pool, health);
    const onConnectionError = health && ((err: Error) => health.failed(err));
    return new Client({
      adapter: new PrismaPg(connections, {
        disposeExternalPool: true,
        ...(onConnectionError && { onConnectionError }),
      }),
    });
  };
}

export interface TransactionOptions {
  /**
   * Longest a transaction waits for a pooled connection, in ms (Prisma's `maxWait`); past it the
   * request is shed with 503 OVERLOADED instead of failing as a 500.
   */
  readonly maxWaitMs?: number;
}

/**
 * Prisma's transaction timeouts (P2028): "Unable to start a transaction in the given time" (its
 * `maxWait` ran out) and "… cannot be executed on an expired transaction" (it ran past its
 * `timeout`, 5 s by default: a starved process or database; rolled back, nothing committed).
 */
const TRANSACTION_TIMEOUTS = ['start a transaction', 'expired transaction'];
function isTransactionTimeout(err: unknown): boolean {
  const { code, message } = err as { code?: unknown; message?: unknown };
  return code === 'P2028' && typeof message === 'string' && TRANSACTION_TIMEOUTS.some((t) => message.includes(t));
}

/**
 * pg-pool's connectionTimeoutMillis (`DB_POOL_TIMEOUT_MS`) ran out: waiting for a free pooled
 * connection ("timeout exceeded when trying to connect") or opening a new one ("Connection
 * terminated due to connection timeout"). Both are taken as load (a starved process or database
 * opens connections slowly too), not as an outage: OVERLOADED. A refused or dropped connection is
 * DB_UNAVAILABLE.
 */
const POOL_TIMEOUTS = ['timeout exceeded when trying to connect', 'due to connection timeout'];
function isPoolTimeout(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if ((e as { code?: unknown }).code === 'P2024') return true; // Prisma's own pool wait
    if (POOL_TIMEOUTS.some((text) => e.message.includes(text))) return true;
  }
  return false;
}

const overloaded = (err: unknown) =>
  new OverloadError('pool_wait', 'over capacity (no database connection free): retry later', err);

/**
 * The coded error a database failure that a retry may cure is answered with: no pooled
 * connection free within `DB_POOL_TIMEOUT_MS` (or Prisma's transaction `maxWait`), or a transaction
 * that ran past its timeout, is 503 OVERLOADED (shed, reason `pool_wait`); a database that refuses, drops or times out connections
 * is 503 DB_UNAVAILABLE. Anything else: `undefined` (a 500, or the domain's own error).
 * For `classifyError` of the HTTP app, so reads outside a transaction are covered too.
 */
export function transientDbError(err: unknown): RippleError | undefined {
  if (isRippleError(err)) return undefined;
  if (isTransactionTimeout(err) || isPoolTimeout(err)) return overloaded(err);
  if (isDatabaseUnavailable(err)) {
    return HttpErrors.databaseUnavailable.error('the database is unavailable: retry later', { cause: err });
  }
  return undefined;
}

/**
 * Raw statements outside a transaction (on Prisma's pool, or pg's: `pgSql`); transient database
 * failures become coded 503 errors (`transientDbError`).
 */
export function codedStatements(db: RawSql): RawSql {
  const mapped = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (err) {
      throw transientDbError(err) ?? err;
    }
  };
  return {
    $executeRaw: (query, ...values) => mapped(() => db.$executeRaw(query, ...values)),
    $queryRaw: <T>(query: TemplateStringsArray, ...values: unknown[]) =>
      mapped(() => db.$queryRaw<T>(query, ...values)),
  };
}

/** A Prisma client's interactive transactions as a `Transaction`. */
export function prismaTransaction<Tx extends RawSql>(
  db: { $transaction<R>(fn: (tx: Tx) => Promise<R>, options?: { maxWait?: number }): Promise<R> },
  opts: TransactionOptions = {},
): Transaction<Tx> {
  const options = opts.maxWaitMs !== undefined ? { maxWait: opts.maxWaitMs } : undefined;
  return async (fn) => {
    try {
      return await db.$transaction(fn, options);
    } catch (err) {
      throw transientDbError(err) ?? err;
    }
  };
}
