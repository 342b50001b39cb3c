import pg from 'pg';
import { Counter, Gauge, Histogram, connectionHealth, watchConnection } from '@ripple/telemetry';
import type { Logger, Registry } from '@ripple/telemetry';
import type { EventProducer } from '@ripple/kafka';
import { BacklogShedder } from './backlog-shedder.js';
import { CommitStamps } from './commit-stamps.js';
import { listenForOutbox } from './listener.js';
import { PgOutboxStore } from './pg-store.js';
import { createOutboxRelay } from './relay.js';

export interface OutboxServiceOptions {
  readonly databaseUrl: string;
  readonly producer: EventProducer;
  readonly topicPrefix: string;
  readonly logger: Logger;
  readonly metrics: Registry;
  readonly batchSize: number;
  readonly pollIntervalMs: number;
  /** How long a relay may hold a shard while Kafka does not answer. */
  readonly leaseMs: number;
  /** Sent rows are deleted after this long. */
  readonly retentionMs: number;
  /**
   * Writes should be refused (`OutboxService.shouldShed`) while the relay publishes but falls
   * behind, and a row written now would wait longer than this for it, in ms (`BacklogShedder`);
   * 0: never.
   */
  readonly shedWaitMs: number;
  /**
   * Bounds of the commit stamps behind `outbox_commit_to_ack_seconds` (see `OutboxService.wake`):
   * most events held (default 50,000) and for how long, in ms (default 60,000). An event not
   * acknowledged within them is not in the histogram (it is in `outbox_publish_latency_seconds`).
   */
  readonly commitStamps?: { readonly maxEntries?: number; readonly maxAgeMs?: number };
}

export interface OutboxService {
  /**
   * Starts the relay (call it once the producer is connected). Until then rows accumulate and
   * the backlog metrics show them.
   */
  startRelay(): void;
  /**
   * Call after every commit that wrote outbox rows, as soon as the commit returned: wakes this
   * process's relay, and while that relay does not publish (Kafka not reached yet, or failing),
   * the relays of other processes with a coalesced NOTIFY, so they take the rows. `eventIds`,
   * the CloudEvents ids of the events the commit wrote, are stamped with the time of this call:
   * when this process's relay publishes them, `outbox_commit_to_ack_seconds` observes commit → ack.
   */
  wake(eventIds?: Iterable<string>): void;
  /**
   * Whether a write that adds outbox rows should be refused now because this process's relay
   * publishes but cannot keep up (`BacklogShedder`: never while it cannot publish at all). No I/O.
   */
  shouldShed(): boolean;
  stop(): Promise<void>;
}

/**
 * The relay as a service runs it: PostgreSQL store, in-process wake-ups after each commit,
 * LISTEN/NOTIFY between processes (see `listenForOutbox`) with a polling fallback, retention clean-up, and the outbox metrics (from the start, so a backlog that grows
 * while Kafka is away shows). The relay itself runs from `startRelay()`.
 */
export function startOutboxService(opts: OutboxServiceOptions): OutboxService {
  const pool = new pg.Pool({ connectionString: opts.databaseUrl, max: 3 });
  const health = (connection: string) =>
    connectionHealth({ logger: opts.logger, metrics: opts.metrics, client: 'pg', connection });
  // An idle pooled client that loses its connection emits on the pool: handled, logged once, counted.
  watchConnection(pool, health('outbox-pool'), 'connect');
  const vacuums = new Histogram({
    name: 'outbox_vacuum_duration_seconds',
    help:
      "VACUUMs of the outbox table this process's relay ran (every few thousand rows it moved to outbox_sent), " +
      'by outcome: ok, concurrent (another VACUUM held the table), skipped (this role may not VACUUM it), error',
    labelNames: ['outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [opts.metrics],
  });
  let warnedSkipped = false;
  const store = new PgOutboxStore(pool, {
    leaseMs: opts.leaseMs,
    health: health('outbox-lock-session'),
    onVacuum: (result) => {
      vacuums.observe({ outcome: result.outcome }, result.seconds);
      if (result.outcome === 'error') opts.logger.warn({ err: result.error }, 'outbox VACUUM failed');
      // Once: a role that may not VACUUM the table is told so at every one.
      else if (result.outcome === 'skipped' && !warnedSkipped) {
        warnedSkipped = true;
        opts.logger.warn(
          { reason: result.reason },
          "outbox VACUUM skipped: the relay's reads slow down after bursts unless autovacuum runs or the table's owner VACUUMs it",
        );
      }
    },
  });

  const latency = new Histogram({
    name: 'outbox_publish_latency_seconds',
    // created_at is the writing transaction's start: the figure includes that transaction's own
    // statement and commit (an fsync), so it bounds commit → ack from above.
    help: "From the outbox row's created_at (its transaction's start) to the broker acknowledgement",
    // 0.02: the bound the relay is held to (commit → ack p99 ≤ 20 ms) reads off the histogram.
    buckets: [0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [opts.metrics],
  });
  const stamps = new CommitStamps({
    maxEntries: opts.commitStamps?.maxEntries ?? 50_000,
    maxAgeMs: opts.commitStamps?.maxAgeMs ?? 60_000,
  });
  const commitToAck = new Histogram({
    name: 'outbox_commit_to_ack_seconds',
    help:
      "From this process's commit returning to the broker's acknowledgement; rows committed by other " +
      'processes are not in it',
    buckets: [0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers: [opts.metrics],
  });
  let droppedReported = 0;
  new Counter({
    name: 'outbox_commit_stamps_dropped_total',
    help:
      'Commit stamps dropped unused: their events were not acknowledged through this process within ' +
      'the bounds (published by another process, or still unsent)',
    registers: [opts.metrics],
    collect() {
      this.inc(stamps.dropped - droppedReported);
      droppedReported = stamps.dropped;
    },
  });
  // Both gauges read one query per scrape: the first collect starts it, the second reuses it.
  let pending: { at: number; result: ReturnType<PgOutboxStore['backlog']> } | undefined;
  const backlog = () => {
    if (!pending || Date.now() - pending.at > 1000) {
      pending = {
        at: Date.now(),
        result: store.backlog().catch(() => ({ count: Number.NaN, oldestAgeSeconds: Number.NaN })),
      };
    }
    return pending.result;
  };
  new Gauge({
    name: 'outbox_backlog_rows',
    help: 'Outbox rows not yet acknowledged by Kafka',
    registers: [opts.metrics],
    async collect() {
      this.set((await backlog()).count);
    },
  });
  new Gauge({
    name: 'outbox_oldest_unsent_age_seconds',
    help: 'Age of the oldest outbox row not yet acknowledged by Kafka (0 when none)',
    registers: [opts.metrics],
    async collect() {
      this.set((await backlog()).oldestAgeSeconds);
    },
  });

  const refused = new Counter({
    name: 'outbox_rows_refused_total',
    help:
      'Outbox rows set aside unpublished because Kafka can never take them (one record over the bound of a ' +
      'produce request): marked sent with outbox.refused set, each logged as an error',
    registers: [opts.metrics],
  });

  const shedder = new BacklogShedder({ maxWaitMs: opts.shedWaitMs });
  const relay = createOutboxRelay({
    store,
    progress: shedder,
    producer: opts.producer,
    topicPrefix: opts.topicPrefix,
    logger: opts.logger,
    batchSize: opts.batchSize,
    pollIntervalMs: opts.pollIntervalMs,
    onRefused: (rows) => refused.inc(rows.length),
    onPublished: (rows) => {
      const now = Date.now();
      const acked = performance.now();
      for (const r of rows) {
        latency.observe(Math.max(0, now - r.createdAt.getTime()) / 1000);
        // The CloudEvents id travels in the row's headers (`toOutboxMessage`).
        const id = r.headers.ce_id;
        const committed = id === undefined ? undefined : stamps.take(id);
        if (committed !== undefined) commitToAck.observe((acked - committed) / 1000);
      }
    },
  });
  const listener = listenForOutbox(opts.databaseUrl, opts.logger, () => relay.wake(), health('outbox-listener'));
  // Every due row, one clean-up at a time: a minute's rows at any rate (one statement of 10,000
  // rows a minute kept up with 166 rows/s only).
  let cleaning: Promise<void> | undefined;
  let stopping = false;
  const cleanup = setInterval(
    () => {
      cleaning ??= store
        .deleteExpired(opts.retentionMs, () => stopping)
        .then(
          () => undefined,
          (err: unknown) => opts.logger.warn({ err }, 'outbox clean-up failed'),
        )
        .finally(() => (cleaning = undefined));
    },
    Math.min(opts.retentionMs, 60_000),
  );
  cleanup.unref();

  return {
    startRelay: () => relay.start(),
    wake(eventIds) {
      if (eventIds !== undefined) stamps.stamp(eventIds);
      relay.wake();
      if (!relay.active()) listener.notify();
    },
    shouldShed: () => shedder.shouldShed(),
    async stop() {
      clearInterval(cleanup);
      stopping = true;
      await cleaning;
      await listener.stop();
      await relay.stop();
      await store.close();
      await pool.end();
    },
  };
}
