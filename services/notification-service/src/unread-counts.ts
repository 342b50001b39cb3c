import type { Emit, TraceContext } from '@ripple/service';
import type { Db, Tx } from './db.js';

/** A user's unread count at one generation (which rises by one with every change of the count). */
export interface UnreadCount {
  readonly userId: string;
  readonly count: number;
  /** 0 for a user whose count never changed. */
  readonly generation: number;
}

interface Row {
  user_id: string;
  count: number;
  generation: bigint;
}
const toCount = (r: Row): UnreadCount => ({ userId: r.user_id, count: r.count, generation: Number(r.generation) });

/** Adds `deltas` to the users' rows (see `emitUnreadCounts`), creating missing ones; returns the new counts. */
async function addUnreadCounts(tx: Tx, deltas: ReadonlyMap<string, number>): Promise<UnreadCount[]> {
  if (deltas.size === 0) return [];
  // INSERT … SELECT … ORDER BY takes the rows in that order: the locks too.
  const rows = await tx.$queryRaw<Row[]>`
    INSERT INTO unread_counts AS c (user_id, count, generation)
    SELECT user_id, delta, 1
    FROM unnest(${[...deltas.keys()]}::text[], ${[...deltas.values()]}::int[]) AS d(user_id, delta)
    ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET count = c.count + excluded.count, generation = c.generation + 1
    RETURNING user_id, count, generation`;
  return rows.map(toCount);
}

/**
 * Adds `deltas` (user id -> change of that user's unread notifications made by `tx`: +1 per
 * notification created unread, -1 per notification marked read) to the users' rows of
 * `unread_counts`, and emits `notification.unread_count` with each new count and generation, in
 * `tx`. Rejects with the database's error (the transaction is then lost, as for any statement).
 *
 * Call it once per transaction, after the notification changes it counts: the upsert locks each
 * user's row until `tx` ends, so a concurrent transaction's upsert for the same user waits for
 * this one's commit and adds to the count it committed. Each count emitted is therefore the
 * count as of `tx`'s commit, and each user's generations follow commit order. The rows are locked
 * in user id order, as every transaction locks them, so two transactions with overlapping users
 * (messages to rooms sharing members, posts mentioning the same people) never wait for each other
 * in a cycle.
 *
 * A delta must be the rows `tx`'s statements changed, not the rows it expected to change: a
 * notification another transaction read first is not read again.
 */
export async function emitUnreadCounts(
  tx: Tx,
  emit: Emit,
  deltas: ReadonlyMap<string, number>,
  trace: TraceContext,
): Promise<void> {
  for (const c of await addUnreadCounts(tx, deltas)) {
    await emit(tx, 'notification.unread_count', { userId: c.userId, count: c.count, generation: c.generation }, trace);
  }
}

/** `userId`'s unread count as last committed (generation 0, count 0 for a user never counted). */
export async function unreadCount(db: Db | Tx, userId: string): Promise<UnreadCount> {
  const row = await db.unreadCount.findUnique({ where: { userId } });
  return row ? { userId, count: row.count, generation: Number(row.generation) } : { userId, count: 0, generation: 0 };
}
