import type { Pool } from 'pg';
import { OUTBOX_SHARDS } from '@ripple/events';
import type { OutboxRecord, OutboxStore } from './relay.js';

/** Advisory-lock class of the outbox shards (the second key is the shard number). */
const SHARD_LOCK_CLASS = 0x0b0c;

interface Row {
  id: string;
  topic: string;
  key: string;
  value: string;
  headers: Record<string, string>;
  created_at: Date;
}

export interface PgOutboxStoreOptions {
  /**
   * Upper bound on how long a relay may hold a shard while publishing: PostgreSQL ends a
   * transaction idle for longer, which releases the shard to another relay.
   */
  readonly leaseMs: number;
  readonly shards?: number;
}

/**
 * The outbox seen by a relay. Rows are split into shards by a hash of their partition key. A
 * relay publishes inside one transaction that holds the advisory locks of the shards it took and
 * locks their rows (`FOR UPDATE SKIP LOCKED`); another relay skips shards that are taken. So
 * relays share the work, and one aggregate's rows are only ever published by one relay at a
 * time, in id order. A relay that dies or hangs loses its transaction (the lease bounds how long
 * it may sit idle in it), and with it the shards.
 */
export class PgOutboxStore implements OutboxStore {
  private readonly shards: number;

  constructor(
    private readonly pool: Pool,
    private readonly opts: PgOutboxStoreOptions,
  ) {
    this.shards = opts.shards ?? OUTBOX_SHARDS;
  }

  /**
   * In one transaction: takes every shard that has unsent rows and that no other relay holds,
   * locks the oldest `limit` unsent rows of those shards in id order, publishes them in one
   * request, and marks them sent. Resolves to the number of rows published.
   */
  async publishBatch(limit: number, publish: (rows: readonly OutboxRecord[]) => Promise<void>): Promise<number> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      await client.query(`SET LOCAL idle_in_transaction_session_timeout = ${Math.ceil(this.opts.leaseMs)}`);
      // Takes every pending shard that no other relay holds right now (try-locks never wait).
      const shards = await client.query<{ shard: number }>(
        `SELECT shard FROM (SELECT DISTINCT shard FROM outbox WHERE sent_at IS NULL AND shard < $2) pending
         WHERE pg_try_advisory_xact_lock($1, shard)`,
        [SHARD_LOCK_CLASS, this.shards],
      );
      const taken = shards.rows.map((r) => r.shard);
      if (taken.length === 0) {
        await client.query('ROLLBACK');
        return 0;
      }
      // A prefix of the id order is, for every shard, that shard's oldest rows: order holds per key.
      // ORDER BY the table's bigint column: the output column `id` is text and would sort "10" < "9".
      const { rows } = await client.query<Row>(
        `SELECT outbox.id::text AS id, topic, key, value, headers, created_at FROM outbox
         WHERE shard = ANY($1::int[]) AND sent_at IS NULL ORDER BY outbox.id LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [taken, limit],
      );
      if (rows.length === 0) {
        await client.query('ROLLBACK');
        return 0;
      }
      await publish(
        rows.map((r) => ({
          id: r.id,
          topic: r.topic,
          key: r.key,
          value: r.value,
          headers: r.headers,
          createdAt: r.created_at,
        })),
      );
      await client.query('UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])', [rows.map((r) => r.id)]);
      await client.query('COMMIT');
      return rows.length;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  /** Unsent rows and the age of the oldest one (for metrics). */
  async backlog(): Promise<{ count: number; oldestAgeSeconds: number }> {
    const { rows } = await this.pool.query<{ count: string; age: number | null }>(
      `SELECT count(*) AS count, EXTRACT(EPOCH FROM now() - min(created_at))::float8 AS age
       FROM outbox WHERE sent_at IS NULL`,
    );
    return { count: Number(rows[0]?.count ?? 0), oldestAgeSeconds: Math.max(0, rows[0]?.age ?? 0) };
  }

  /** Deletes up to `limit` rows sent more than `retentionMs` ago; returns how many. */
  async deleteSent(retentionMs: number, limit: number): Promise<number> {
    const result = await this.pool.query(
      `DELETE FROM outbox WHERE id IN (
         SELECT id FROM outbox WHERE sent_at < now() - make_interval(secs => $1::float8 / 1000) ORDER BY sent_at LIMIT $2)`,
      [retentionMs, limit],
    );
    return result.rowCount ?? 0;
  }
}
