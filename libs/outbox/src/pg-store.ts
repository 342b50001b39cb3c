import pg from 'pg';
import type { Pool } from 'pg';
import { OUTBOX_SHARDS } from '@ripple/events';
import type { ConnectionHealth } from '@ripple/telemetry';
import type { OutboxRecord, OutboxStore } from './relay.js';

/** Advisory-lock class of the outbox shards (the second key is the shard number). */
const SHARD_LOCK_CLASS = 0x0b0c;
/** SQLSTATE of a session PostgreSQL ended because it sat idle longer than idle_session_timeout. */
const IDLE_SESSION_TIMEOUT = '57P05';

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
   * The lease, in ms: PostgreSQL ends the relay's lock session once it has been idle this long
   * (`idle_session_timeout`), which releases its shards to another relay. A relay is idle in it
   * while it waits for Kafka, so a relay stuck on a broker that does not answer loses its shards
   * after this long. Must exceed the relay's poll interval.
   */
  readonly leaseMs: number;
  readonly shards?: number;
  /** Errors and recoveries of the lock session (`client_connection_errors_total`). */
  readonly health?: ConnectionHealth;
}

/**
 * The outbox seen by a relay. Rows are split into shards by a hash of their partition key. A
 * relay holds a dedicated *lock session*: it takes, with session-level advisory try-locks, every
 * shard that no other relay holds, and for each batch reads the oldest unsent rows of its shards,
 * publishes them and marks them sent, each step a short autocommit statement; it keeps the
 * shards while it finds rows and releases them when it finds none or fails. No transaction is
 * ever open while Kafka is called.
 *
 * Safety: one aggregate's rows are only ever read by the session that holds its shard, in id
 * order. The marks are written on that same session, so a relay can mark rows sent only while
 * it still holds their shard: when PostgreSQL ended its session (the lease ran out while Kafka
 * did not answer), the marks fail and the rows are published again by whoever takes the shard
 * (at least once; consumers drop duplicates by event id). A relay that dies loses its session
 * and with it the shards.
 */
export class PgOutboxStore implements OutboxStore {
  private readonly shards: number;
  private session: pg.Client | undefined;
  private sessionBroken = false;
  /** True while `publish` runs (the lock session sits idle then, and may reach its lease). */
  private publishing = false;
  /** The shards this relay's lock session holds (session-level advisory locks). */
  private held: number[] = [];

  constructor(
    private readonly pool: Pool,
    private readonly opts: PgOutboxStoreOptions,
  ) {
    this.shards = opts.shards ?? OUTBOX_SHARDS;
  }

  /** The lock session, opened on first use and again after PostgreSQL ended it. */
  private async lockSession(): Promise<pg.Client> {
    if (this.session && !this.sessionBroken) return this.session;
    await this.closeSession();
    const client = new pg.Client({
      ...(this.pool.options as pg.ClientConfig),
      // The lease: the server ends this session when it sits idle (between statements) this long.
      options: `-c idle_session_timeout=${Math.ceil(this.opts.leaseMs)}`,
    });
    client.on('error', (err: Error & { code?: string }) => {
      // The session ended under us: the next batch opens another. 57P05 is the lease running
      // out (idle_session_timeout) while the relay waited for Kafka: expected, not a fault.
      this.sessionBroken = true;
      // While a batch waits for Kafka, the end of the session is the lease doing its job.
      if (err.code !== IDLE_SESSION_TIMEOUT && !this.publishing) this.opts.health?.failed(err, { lockSession: true });
    });
    await client.connect();
    this.session = client;
    this.sessionBroken = false;
    return client;
  }

  private async closeSession(): Promise<void> {
    const client = this.session;
    this.session = undefined;
    this.held = []; // the session's locks end with it
    if (client) await client.end().catch(() => undefined);
  }

  /**
   * Reads the oldest `limit` unsent rows of the shards this relay holds, in id order, calls
   * `publish` with them (no lock of the database is held by a transaction meanwhile) and marks
   * them sent. Before the read it takes every free shard it does not hold yet. It keeps its
   * shards from one batch to the next while it finds rows, so a busy relay runs two statements
   * per batch (read, mark) instead of four (take, read, mark, release); it releases them when it
   * finds no row (then a relay elsewhere, woken by its own writes, can take them) and when the
   * database or `publish` fails (so a relay whose Kafka works can take over). Resolves to the
   * number of rows published; rejects when the database or `publish` fails (the rows stay unsent).
   */
  async publishBatch(limit: number, publish: (rows: readonly OutboxRecord[]) => Promise<void>): Promise<number> {
    let client: pg.Client;
    try {
      client = await this.lockSession();
    } catch (err) {
      this.sessionBroken = true;
      this.held = [];
      throw err;
    }
    let keep = false;
    try {
      if (this.held.length < this.shards) {
        // Try-locks never wait; a shard another relay holds is skipped.
        const taken = await client.query<{ shard: number }>(
          `SELECT s AS shard FROM generate_series(0, $2::int - 1) s
           WHERE s <> ALL($3::int[]) AND pg_try_advisory_lock($1, s)`,
          [SHARD_LOCK_CLASS, this.shards, this.held],
        );
        this.held.push(...taken.rows.map((r) => r.shard));
      }
      this.opts.health?.recovered({ lockSession: true });
      if (this.held.length === 0) return 0;
      // A prefix of the id order is, for every shard, that shard's oldest rows: order holds per key.
      // ORDER BY the table's bigint column: the output column `id` is text and would sort "10" < "9".
      const { rows } = await client.query<Row>(
        `SELECT outbox.id::text AS id, topic, key, value, headers, created_at FROM outbox
         WHERE shard = ANY($1::int[]) AND sent_at IS NULL ORDER BY outbox.id LIMIT $2`,
        [this.held, limit],
      );
      if (rows.length === 0) return 0;
      this.publishing = true;
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
      this.publishing = false;
      // On the lock session: fails (rows stay unsent) if the lease ran out meanwhile.
      await client.query('UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])', [rows.map((r) => r.id)]);
      keep = true;
      return rows.length;
    } finally {
      this.publishing = false;
      if (!keep) await this.release();
    }
  }

  /** Unlocks the shards this relay keeps between batches (when it stops); never rejects. */
  async release(): Promise<void> {
    if (this.held.length === 0 || !this.session) return;
    this.held = [];
    await this.session.query('SELECT pg_advisory_unlock_all()').catch(() => {
      // Session gone: PostgreSQL released its locks with it.
      this.sessionBroken = true;
    });
  }

  /** Closes the lock session (its shards are released). */
  async close(): Promise<void> {
    await this.closeSession();
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
