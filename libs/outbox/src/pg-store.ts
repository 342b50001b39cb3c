import pg from 'pg';
import { parseIntoClientConfig } from 'pg-connection-string';
import type { Pool } from 'pg';
import { OUTBOX_SHARDS } from '@ripple/events';
import type { ConnectionHealth } from '@ripple/telemetry';
import type { OutboxRecord, OutboxStore, SetAside } from './relay.js';

/** Advisory-lock class of the outbox shards (the second key is the shard number). */
const SHARD_LOCK_CLASS = 0x0b0c;
/**
 * Why the lock session commits with `synchronous_commit = off` (a commit returns once its WAL
 * record is written, before the WAL is flushed to disk; the WAL writer flushes it within about
 * 3 × `wal_writer_delay`, 600 ms by default): the only durable change the relay makes is the mark
 * (`sent_at`), and it makes it after the broker acknowledged the rows. A mark lost to a server
 * crash in that window leaves its rows unsent, so they are published again: at least once, which
 * the platform tolerates anyway (consumers and history appends drop repeats by event id). It cannot
 * lose or reorder an event: the WAL is replayed in order, so what a crash loses is always the
 * newest marks (every shard's unsent rows stay a suffix of its id order, republished in order),
 * and a commit that waits for the flush, such as a service's write behind a 201, flushes every
 * earlier mark with it. Advisory locks, the shards, are not in the WAL at all. On this server the
 * flush of each mark (fdatasync, 50–100 ms stalls on a VM disk) held the next batch, since the
 * same statement reads it. Only this session: the services' writing transactions (and their
 * idempotency keys, which back a 201) stay durable.
 */
const RELAY_SESSION_DURABILITY = 'synchronous_commit=off';

/**
 * The relay's one statement per batch (`PgOutboxStore.step`): moves the rows $1 (ids) from
 * `outbox` to `outbox_sent`, sent now, those of them in $7 (ids) refused with the code $8 (set
 * aside unpublished, `OutboxStore.publishBatch`); try-locks every free shard of the $2 (shards, $3
 * those held, $4 the lock class); reads the oldest $5 rows of the shards held; and with $6 releases
 * every shard when it found none. `outbox` holds unsent rows only, so the read goes through its
 * primary key from the first unsent row, past the index entries of rows moved since the last VACUUM
 * (`PgOutboxStoreOptions.vacuumAfterRows`) and nothing else, however many sent rows are kept.
 */
export const STEP_SQL = `WITH moved AS (
    DELETE FROM outbox WHERE id = ANY($1::bigint[])
    RETURNING id, event_id, topic, key, shard, value, headers, created_at
  ), kept AS (
    -- Runs although nothing reads it, as every data-modifying WITH does.
    INSERT INTO outbox_sent (id, event_id, topic, key, shard, value, headers, created_at, sent_at, refused)
    SELECT id, event_id, topic, key, shard, value, headers, created_at, now(),
           CASE WHEN id = ANY($7::bigint[]) THEN $8::text END
    FROM moved
  ), taken AS MATERIALIZED (
    -- Try-locks never wait; a shard another relay holds is skipped.
    SELECT s FROM generate_series(0, $2::int - 1) s WHERE s <> ALL($3::int[]) AND pg_try_advisory_lock($4, s)
  ), batch AS MATERIALIZED (
    -- The statement's snapshot still sees the rows it moves: they are left out by id.
    SELECT outbox.id, topic, key, value, headers, created_at FROM outbox
    WHERE shard = ANY(ARRAY(SELECT s FROM taken) || $3::int[]) AND outbox.id <> ALL($1::bigint[])
    ORDER BY outbox.id LIMIT $5
  ), released AS MATERIALIZED (
    SELECT pg_advisory_unlock_all() WHERE $6::boolean AND NOT EXISTS (SELECT 1 FROM batch)
  )
  SELECT ARRAY(SELECT s FROM taken) AS taken, (SELECT count(*) FROM released)::int AS released,
         batch.id::text AS id, topic, key, value, headers, created_at
  FROM (SELECT 1) one LEFT JOIN batch ON true ORDER BY batch.id`;

/** `PgOutboxStoreOptions.vacuumAfterRows`'s default. */
const VACUUM_AFTER_ROWS = 5000;

/**
 * Removes the index entries (and heap tuples) of the rows the relays moved out of `outbox`, which
 * each read would walk past otherwise. SKIP_LOCKED: a VACUUM already running on the table (another
 * relay's, autovacuum's) does the job, so this one returns at once instead of waiting for it;
 * INDEX_CLEANUP ON: the index entries are the point, whatever share of pages changed; TRUNCATE OFF:
 * truncating takes an exclusive lock, which would stall the services' inserts.
 */
const VACUUM_SQL = 'VACUUM (SKIP_LOCKED, INDEX_CLEANUP ON, TRUNCATE OFF) outbox';

/**
 * The backlog's size and the age of its first row in id order, in seconds (the relay's next; the
 * oldest too, but for transactions that overlapped: their start, `created_at`, orders them to the
 * millisecond, not their ids). Both through the primary key: the table's file keeps the pages the
 * largest backlog filled (no truncation), and `min(created_at)` read every one of them (4,762
 * pages, 2.2 ms, after 100,000 rows drained; 8,334 pages and 22 ms for a validator), where the
 * index holds the live rows only once VACUUMed (3–5 pages).
 */
export const BACKLOG_SQL = `SELECT (SELECT count(*) FROM outbox) AS count,
  EXTRACT(EPOCH FROM now() - (SELECT created_at FROM outbox ORDER BY id LIMIT 1))::float8 AS age`;

/**
 * Whether this session's role may VACUUM `outbox` (PostgreSQL 15: the table's or the database's
 * owner, or a member with its privileges, or a superuser; a role that may not gets a warning and
 * nothing is done).
 */
const MAY_VACUUM_SQL = `SELECT pg_has_role(relowner, 'USAGE')
    OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE') AS may
  FROM pg_class WHERE oid = 'outbox'::regclass`;

/** SQLSTATE of VACUUM (SKIP_LOCKED)'s notice that another session holds the table. */
const LOCK_NOT_AVAILABLE = '55P03';

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
  /**
   * Rows this relay moves out of `outbox` between two VACUUMs of it (default 5,000; 0: never, as
   * a benchmark's comparison does). Each moved row leaves a primary-key entry that every read walks
   * past until a VACUUM removes it; autovacuum comes at most once a minute (`autovacuum_naptime`).
   * The VACUUM runs on the pool, beside the relay, not in its way.
   */
  readonly vacuumAfterRows?: number;
  /** Told of each VACUUM the relay ran (`VacuumResult`). */
  readonly onVacuum?: (result: VacuumResult) => void;
}

/**
 * A VACUUM of `outbox` the relay ran: how long it took, in seconds, and its outcome: `ok`;
 * `concurrent` (another VACUUM held the table, and does the job); `skipped` with the reason (the
 * service's role may not VACUUM the table, so it was not tried: PostgreSQL would only warn); or
 * `error` with the error.
 */
export type VacuumResult = { readonly seconds: number } & (
  | { readonly outcome: 'ok' | 'concurrent' }
  | { readonly outcome: 'skipped'; readonly reason: string }
  | { readonly outcome: 'error'; readonly error: unknown }
);

/**
 * The outbox seen by a relay. Rows are split into shards by a hash of their partition key. A
 * relay holds a dedicated *lock session*: it takes, with session-level advisory try-locks, every
 * shard that no other relay holds, and for each batch reads the oldest unsent rows of its shards,
 * publishes them and marks them sent (moves them to `outbox_sent`), the mark and the next read in
 * one short autocommit statement; it keeps the shards while it finds rows and releases them when it
 * finds none or fails. No transaction is ever open while Kafka is called. Every
 * `vacuumAfterRows` rows it marked, it has PostgreSQL VACUUM `outbox` (on the pool, beside it).
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
  /** The next batch, read by the statement that marked the last one (rows of `held` shards). */
  private next: OutboxRecord[] | undefined;
  /** Rows moved out of `outbox` since the last VACUUM started. */
  private movedSinceVacuum = 0;
  /** The VACUUM running, if any (one at a time). */
  private vacuuming: Promise<void> | undefined;

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
    // pg lets a connection string's settings replace the config's, its libpq `options` too: the
    // string is parsed here, so the session's settings come after its options (the last wins).
    const { connectionString, ...config } = this.pool.options as pg.ClientConfig;
    const own = connectionString === undefined ? config : { ...config, ...parseIntoClientConfig(connectionString) };
    const client = new pg.Client({
      ...own,
      // The lease: the server ends this session when it sits idle (between statements) this long.
      // Its marks need no WAL flush (RELAY_SESSION_DURABILITY).
      options: [own.options, `-c idle_session_timeout=${Math.ceil(this.opts.leaseMs)} -c ${RELAY_SESSION_DURABILITY}`]
        .filter(Boolean)
        .join(' '),
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
    this.next = undefined;
    if (client) await client.end().catch(() => undefined);
  }

  /**
   * Reads the oldest `limit` unsent rows of the shards this relay holds, in id order, calls
   * `publish` with them (no lock of the database is held by a transaction meanwhile) and marks
   * them sent (those `publish` handed to `setAside` refused too). Resolves to the number of rows
   * handled; rejects when the database or `publish` fails (the rows stay unsent).
   *
   * One statement per batch while the relay finds rows: the statement that marks a batch sent
   * also takes every free shard and reads the next batch (`step`), which the next call publishes
   * without a statement of its own. When that read found nothing, the next call reads once more
   * and, still finding nothing, releases the shards in that same statement (so a relay elsewhere,
   * woken by its own writes, can take them). It releases them too when the database or `publish`
   * fails (so a relay whose Kafka works can take over) and when it stops. So a lone row costs
   * three statements (read, mark and read, read and release) where it cost five (take, read,
   * mark, read, release), and a busy relay one per batch where it cost two; each is a PostgreSQL
   * round trip and a hop through the service's event loop, whose socket write and wake-up of the
   * idle backend cost ~0.4–0.8 ms of the service's CPU on a small VM.
   */
  async publishBatch(
    limit: number,
    publish: (rows: readonly OutboxRecord[], setAside: (refused: SetAside) => void) => Promise<void>,
  ): Promise<number> {
    let client: pg.Client;
    try {
      client = await this.lockSession();
    } catch (err) {
      this.sessionBroken = true;
      this.held = [];
      this.next = undefined;
      throw err;
    }
    let keep = false;
    try {
      let rows = this.next;
      this.next = undefined;
      if (rows === undefined || rows.length === 0) {
        rows = await this.step(client, [], limit, true);
        this.opts.health?.recovered({ lockSession: true });
        if (rows.length === 0) {
          keep = true; // released by the statement itself
          return 0;
        }
      }
      this.publishing = true;
      let setAside: SetAside | undefined;
      await publish(rows, (refused) => (setAside = refused));
      this.publishing = false;
      // On the lock session: fails (rows stay unsent) if the lease ran out meanwhile.
      this.next = await this.step(client, rows, limit, false, setAside);
      keep = true;
      return rows.length;
    } finally {
      this.publishing = false;
      if (!keep) await this.release();
    }
  }

  /**
   * One statement on the lock session (`STEP_SQL`): marks `sent` sent (`setAside` of them refused
   * with its code), takes every free shard, and reads the oldest `limit` unsent rows of the shards
   * held. With `releaseIfNone`, a read that finds nothing releases every shard
   * (`pg_advisory_unlock_all`). Updates `held` to what the session holds afterwards, and starts a
   * VACUUM when `vacuumAfterRows` rows were marked since the last.
   */
  private async step(
    client: pg.Client,
    sent: readonly OutboxRecord[],
    limit: number,
    releaseIfNone: boolean,
    setAside?: SetAside,
  ): Promise<OutboxRecord[]> {
    // ORDER BY the table's bigint column: the output column `id` is text and would sort "10" < "9".
    // A prefix of the id order is, for every shard, that shard's oldest rows: order holds per key.
    const { rows } = await client.query<Row & { taken: number[]; released: number }>({
      // Prepared once per session: planning these CTEs took PostgreSQL ~0.3 ms, more than running
      // them at a few rows a batch.
      name: 'ripple_outbox_step',
      text: STEP_SQL,
      values: [
        sent.map((r) => r.id),
        this.shards,
        this.held,
        SHARD_LOCK_CLASS,
        limit,
        releaseIfNone,
        setAside?.ids ?? [],
        setAside?.code ?? null,
      ],
    });
    const first = rows[0];
    if (first?.released) this.held = [];
    else this.held.push(...(first?.taken ?? []));
    this.vacuumWhenDue(sent.length);
    return rows
      .filter((r) => r.id !== null)
      .map((r) => ({
        id: r.id,
        topic: r.topic,
        key: r.key,
        value: r.value,
        headers: r.headers,
        createdAt: r.created_at,
      }));
  }

  /** Counts `moved` rows and starts a VACUUM of `outbox` when `vacuumAfterRows` were moved since the last. */
  private vacuumWhenDue(moved: number): void {
    const every = this.opts.vacuumAfterRows ?? VACUUM_AFTER_ROWS;
    this.movedSinceVacuum += moved;
    if (every <= 0 || this.movedSinceVacuum < every || this.vacuuming) return;
    this.movedSinceVacuum = 0;
    this.vacuuming = this.vacuum().then((result) => {
      this.vacuuming = undefined;
      this.opts.onVacuum?.(result);
    });
  }

  /**
   * Runs `VACUUM_SQL` on a pooled connection when this role may VACUUM the table
   * (`MAY_VACUUM_SQL`); PostgreSQL says it skipped a table another VACUUM holds with a notice
   * (SQLSTATE 55P03). Both by code, not by message, which the server's language words.
   */
  private async vacuum(): Promise<VacuumResult> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    let client: pg.PoolClient | undefined;
    let concurrent = false;
    const onNotice = (notice: { code?: string }) => {
      if (notice.code === LOCK_NOT_AVAILABLE) concurrent = true;
    };
    try {
      client = await this.pool.connect();
      const { rows } = await client.query<{ may: boolean }>(MAY_VACUUM_SQL);
      if (rows[0]?.may !== true)
        return {
          seconds: seconds(),
          outcome: 'skipped',
          reason: 'this role owns neither the outbox table nor the database',
        };
      client.on('notice', onNotice);
      await client.query(VACUUM_SQL);
      return { seconds: seconds(), outcome: concurrent ? 'concurrent' : 'ok' };
    } catch (error) {
      return { seconds: seconds(), outcome: 'error', error };
    } finally {
      client?.off('notice', onNotice);
      client?.release();
    }
  }

  /** Unlocks the shards this relay keeps between batches (when it stops); never rejects. */
  async release(): Promise<void> {
    this.next = undefined;
    if (this.held.length === 0 || !this.session) return;
    this.held = [];
    await this.session.query('SELECT pg_advisory_unlock_all()').catch(() => {
      // Session gone: PostgreSQL released its locks with it.
      this.sessionBroken = true;
    });
  }

  /** Closes the lock session (its shards are released), once a VACUUM it started has ended. */
  async close(): Promise<void> {
    await this.closeSession();
    await this.vacuuming;
  }

  /** Unsent rows and the age of the first in id order, the next to go (for metrics; `BACKLOG_SQL`). */
  async backlog(): Promise<{ count: number; oldestAgeSeconds: number }> {
    const { rows } = await this.pool.query<{ count: string; age: number | null }>(BACKLOG_SQL);
    return { count: Number(rows[0]?.count ?? 0), oldestAgeSeconds: Math.max(0, rows[0]?.age ?? 0) };
  }

  /**
   * Deletes every row of `outbox_sent` sent more than `retentionMs` ago, in statements (each its
   * own transaction) of `statementRows` rows, until none is due or `stopping()` returns true.
   * Resolves to how many rows it deleted; rejects when a statement fails.
   */
  async deleteExpired(
    retentionMs: number,
    stopping: () => boolean = () => false,
    statementRows = 10_000,
  ): Promise<number> {
    let total = 0;
    for (;;) {
      const result = await this.pool.query(
        `DELETE FROM outbox_sent WHERE id IN (
           SELECT id FROM outbox_sent WHERE sent_at < now() - make_interval(secs => $1::float8 / 1000)
           ORDER BY sent_at LIMIT $2)`,
        [retentionMs, statementRows],
      );
      const deleted = result.rowCount ?? 0;
      total += deleted;
      if (deleted < statementRows || stopping()) return total;
    }
  }
}
