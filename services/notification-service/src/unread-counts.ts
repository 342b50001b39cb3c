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

/**
 * Adds `deltas` (user id -> change of that user's unread notifications, made by `tx`) to the
 * users' rows of `unread_counts`, creating missing ones, and returns the counts, in user id order.
 *
 * Call it once per transaction, after the notification changes it counts: the upsert locks each
 * user's row until `tx` ends, so a concurrent transaction's upsert for the same user waits for
 * this one's commit and adds to the count it committed. Each count returned is therefore the
 * count as of `tx`'s commit, and each user's generations follow commit order. The rows are locked
 * in user id order, as every transaction locks them, so two transactions with overlapping users
 * (messages to rooms sharing members) never wait for each other in a cycle.
 *
 * A delta must be exactly the number of the user's notifications `tx` created unread minus those
 * it marked read (the rows its statements changed, not the rows it expected to change).
 */
export async function addUnreadCounts(tx: Tx, deltas: ReadonlyMap<string, number>): Promise<UnreadCount[]> {
  if (deltas.size === 0) return [];
  const userIds = [...deltas.keys()].sort();
  const changes = userIds.map((u) => deltas.get(u) ?? 0);
  // INSERT … SELECT … ORDER BY takes the rows in that order: the locks too.
  const rows = await tx.$queryRaw<Row[]>`
    INSERT INTO unread_counts AS c (user_id, count, generation)
    SELECT user_id, delta, 1 FROM unnest(${userIds}::text[], ${changes}::int[]) AS d(user_id, delta) ORDER BY user_id
    ON CONFLICT (user_id) DO UPDATE SET count = c.count + excluded.count, generation = c.generation + 1
    RETURNING user_id, count, generation`;
  return rows.map(toCount).sort((a, b) => (a.userId < b.userId ? -1 : a.userId > b.userId ? 1 : 0));
}

/**
 * Adds `deltas` as `addUnreadCounts` does and emits `notification.unread_count` with each
 * user's new count and generation, in `tx`.
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
