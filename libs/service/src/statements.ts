import { pgSql } from '@ripple/db';
import type { RawSql } from '@ripple/db';
import type { ConnectionHealth } from '@ripple/telemetry';
import { codedStatements, pgPool } from './prisma.js';
import type { PoolOptions } from './prisma.js';

/** Statements outside a transaction, and the end of their pool. */
export interface DirectStatements {
  readonly sql: RawSql;
  end(): Promise<void>;
}

/**
 * Statements outside a transaction on a pg pool of their own, with no Prisma runtime in between
 * (`pgSql`), for the group-commit writes (`statementBatcher`); transient failures become coded
 * 503 errors (`codedStatements`: a connection not free or not opened within `pool.timeoutMs` is
 * OVERLOADED, a database away DB_UNAVAILABLE). The pool opens connections as statements need them;
 * the batcher keeps at most two statements of each batched route in flight. `health` counts the
 * `error` events of its idle connections.
 */
export function directStatements(url: string, pool: PoolOptions = {}, health?: ConnectionHealth): DirectStatements {
  const connections = pgPool(url, pool, health);
  if (!health) connections.on('error', () => undefined); // an idle connection lost: the next query opens another
  return { sql: codedStatements(pgSql(connections)), end: () => connections.end() };
}
