#!/usr/bin/env node
// Outbox -> Kafka benchmark (not a test): `pnpm bench:outbox`. Real PostgreSQL and Kafka.
//  - burst: N rows already committed, then R relays drain them: events/s.
//  - steady: rows committed at a fixed rate while one relay runs (woken after each commit, as in a service):
//    latency from the row's scheduled commit time to the broker's acknowledgement, and commit → ack
//    (from the INSERT's commit returning, stamped as `OutboxService.wake(eventIds)` does), with a
//    line per window (`BENCH_WINDOW_SECONDS`) while it runs, so what grows over minutes shows: the
//    relay's PostgreSQL CPU per row, dead tuples, autovacuum runs. `BENCH_KEPT_ROWS` sent rows are
//    kept in the outbox first, as a day of retention keeps them; `BENCH_VACUUM_AFTER_ROWS` sets how
//    often the relays VACUUM the outbox (0: never, autovacuum only).
// Prints one table, with the CPU seconds of this process, of Kafka and of PostgreSQL beside it.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { dropDatabase, ensureDatabase } from '@ripple/db';
import { createEvent, toOutboxMessage } from '@ripple/events';
import { createEventProducer, createKafka, deleteTopics, ensureTopics } from '@ripple/kafka';
import type { EventProducer } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { withCleanup } from '@ripple/testing';
import { CommitStamps } from './commit-stamps.js';
import { PgOutboxStore, createOutboxRelay } from './index.js';
import type { OutboxRecord, OutboxRelay } from './index.js';

const BURST_EVENTS = Number(process.env.BENCH_BURST_EVENTS ?? 20_000);
const STEADY_RATE = Number(process.env.BENCH_STEADY_RATE ?? 1000);
const STEADY_SECONDS = Number(process.env.BENCH_STEADY_SECONDS ?? 10);
const WINDOW_SECONDS = Number(process.env.BENCH_WINDOW_SECONDS ?? 10);
const KEPT_ROWS = Number(process.env.BENCH_KEPT_ROWS ?? 0);
/** Rows between the relay's VACUUMs of `outbox` (`PgOutboxStoreOptions.vacuumAfterRows`; 0: autovacuum only). */
const VACUUM_AFTER_ROWS =
  process.env.BENCH_VACUUM_AFTER_ROWS === undefined ? undefined : Number(process.env.BENCH_VACUUM_AFTER_ROWS);
const KEYS = 200;

const logger = createLogger('bench-outbox', 'warn');
const adminUrl = new URL(process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres');
const run = Date.now().toString(36);
const databaseUrl = new URL(adminUrl);
databaseUrl.pathname = `/ripple_bench_${run}`;
const topic = `bench.${run}.outbox`;
const kafka = createKafka({
  brokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
  clientId: 'bench',
  logger,
});

function cpuSecondsOf(pattern: string): number {
  let pids: string[] = [];
  try {
    pids = execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  } catch {
    return Number.NaN;
  }
  let ticks = 0;
  for (const pid of pids) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      ticks += Number(fields[11]) + Number(fields[12]); // utime + stime
    } catch {
      // the process ended meanwhile
    }
  }
  return ticks / 100;
}

function cpuNow() {
  const self = process.cpuUsage();
  return {
    self: (self.user + self.system) / 1e6,
    kafka: cpuSecondsOf('kafka.Kafka'),
    postgres: cpuSecondsOf('postgres'),
  };
}

/** CPU seconds each side used since `before`. */
function cpuSince(before: ReturnType<typeof cpuNow>) {
  const after = cpuNow();
  return {
    self: after.self - before.self,
    kafka: after.kafka - before.kafka,
    postgres: after.postgres - before.postgres,
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

function rowsFor(count: number, start: number) {
  return Array.from({ length: count }, (_, i) => {
    const n = start + i;
    const event = createEvent('post.liked', {
      source: 'bench',
      data: {
        postId: `post-${n % KEYS}`,
        postAuthorId: 'u1',
        userId: `u${n}`,
        likeCount: n,
        at: new Date().toISOString(),
      },
    });
    return toOutboxMessage(event);
  });
}

async function insert(pool: pg.Pool, messages: ReturnType<typeof rowsFor>): Promise<void> {
  const values: unknown[] = [];
  const tuples = messages.map((m, i) => {
    values.push(m.eventId, topic, m.key, m.shard, m.value, m.headers);
    const b = i * 6;
    return `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6})`;
  });
  await pool.query(
    `INSERT INTO outbox (event_id, topic, key, shard, value, headers) VALUES ${tuples.join(', ')}`,
    values,
  );
}

interface Row {
  scenario: string;
  relays: number;
  events: number;
  eventsPerSecond: number;
  p50: number;
  p99: number;
  max: number;
  /** Commit returned → ack, ms. */
  commitP50: number;
  commitP99: number;
  cpu: { self: number; kafka: number; postgres: number };
  rssMb: number;
}

/** A running relay as both scenarios use it (batches of 500, a 30 s lease). */
function startRelay(
  pool: pg.Pool,
  producer: EventProducer,
  pollIntervalMs: number,
  onPublished: (rows: readonly OutboxRecord[]) => void,
): OutboxRelay {
  const relay = createOutboxRelay({
    store: new PgOutboxStore(pool, { leaseMs: 30_000, vacuumAfterRows: VACUUM_AFTER_ROWS }),
    producer,
    topicPrefix: '',
    logger,
    batchSize: 500,
    pollIntervalMs,
    onPublished,
  });
  relay.start();
  return relay;
}

async function burst(pool: pg.Pool, producers: EventProducer[], relays: number): Promise<Row> {
  for (let i = 0; i < BURST_EVENTS; i += 500) await insert(pool, rowsFor(Math.min(500, BURST_EVENTS - i), i));
  let published = 0;
  const before = cpuNow();
  const started = performance.now();
  const running = producers
    .slice(0, relays)
    .map((producer) => startRelay(pool, producer, 50, (rows) => (published += rows.length)));
  while (published < BURST_EVENTS) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - started) / 1000;
  await Promise.all(running.map((r) => r.stop()));
  return {
    scenario: 'burst (drain backlog)',
    relays,
    events: published,
    eventsPerSecond: published / seconds,
    p50: Number.NaN,
    p99: Number.NaN,
    max: Number.NaN,
    commitP50: Number.NaN,
    commitP99: Number.NaN,
    cpu: cpuSince(before),
    rssMb: process.memoryUsage().rss / 2 ** 20,
  };
}

async function steady(pool: pg.Pool, producer: EventProducer): Promise<Row> {
  const scheduled = new Map<string, number>();
  const latencies: number[] = [];
  const commitLatencies: number[] = [];
  const committed = new CommitStamps({ maxEntries: 1_000_000, maxAgeMs: 600_000 });
  let windowCommit: number[] = [];
  const relay = startRelay(pool, producer, 1000, (rows) => {
    const now = performance.now();
    for (const r of rows) {
      const id = r.headers.ce_id;
      const at = id === undefined ? undefined : scheduled.get(id);
      if (at !== undefined) latencies.push(now - at);
      const commitAt = id === undefined ? undefined : committed.take(id);
      if (commitAt !== undefined) {
        commitLatencies.push(now - commitAt);
        windowCommit.push(now - commitAt);
      }
    }
  });
  const before = cpuNow();
  let windowStart = { at: performance.now(), cpu: before };
  const endWindow = async () => {
    const cpu = cpuSince(windowStart.cpu);
    const seconds = (performance.now() - windowStart.at) / 1000;
    const sorted = windowCommit.sort((a, b) => a - b);
    const stats = await outboxStats(pool);
    process.stderr.write(
      `  ${((performance.now() - start) / 1000).toFixed(0).padStart(4)} s: ${sorted.length} acked, ` +
        `commit → ack p50/p99/max ${percentile(sorted, 50).toFixed(1)}/${percentile(sorted, 99).toFixed(1)}/` +
        `${(sorted[sorted.length - 1] ?? Number.NaN).toFixed(0)} ms, CPU s/s pg ${(cpu.postgres / seconds).toFixed(2)} ` +
        `bench ${(cpu.self / seconds).toFixed(2)}, ${stats}\n`,
    );
    windowCommit = [];
    windowStart = { at: performance.now(), cpu: cpuNow() };
  };
  const tickMs = 10;
  const perTick = Math.max(1, Math.round((STEADY_RATE * tickMs) / 1000));
  const ticks = Math.round((STEADY_SECONDS * 1000) / tickMs);
  const start = performance.now();
  let n = 1_000_000;
  const ticksPerWindow = Math.max(1, Math.round((WINDOW_SECONDS * 1000) / tickMs));
  for (let t = 0; t < ticks; t++) {
    if (t > 0 && t % ticksPerWindow === 0) await endWindow();
    const due = start + t * tickMs;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const rows = rowsFor(perTick, n);
    n += perTick;
    // Stamp the scheduled time, so a writer that falls behind shows up as latency.
    for (const m of rows) scheduled.set(m.eventId, due);
    await insert(pool, rows);
    committed.stamp(rows.map((m) => m.eventId)); // as `OutboxService.wake(eventIds)` does
    relay.wake(); // as a service does after each commit
  }
  const total = ticks * perTick;
  while (latencies.length < total) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - start) / 1000;
  await endWindow();
  await relay.stop();
  const sorted = latencies.sort((a, b) => a - b);
  const sortedCommit = commitLatencies.sort((a, b) => a - b);
  return {
    scenario: `steady ${STEADY_RATE}/s for ${STEADY_SECONDS}s`,
    relays: 1,
    events: total,
    eventsPerSecond: total / seconds,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted[sorted.length - 1] ?? Number.NaN,
    commitP50: percentile(sortedCommit, 50),
    commitP99: percentile(sortedCommit, 99),
    cpu: cpuSince(before),
    rssMb: process.memoryUsage().rss / 2 ** 20,
  };
}

/** The outbox's dead tuples, autovacuum runs and index sizes, for the steady scenario's windows. */
async function outboxStats(pool: pg.Pool): Promise<string> {
  const { rows } = await pool.query<{
    live: string;
    dead: string;
    autovacuums: string;
    vacuums: string;
    index_kb: string;
  }>(
    `SELECT n_live_tup AS live, n_dead_tup AS dead, autovacuum_count AS autovacuums, vacuum_count AS vacuums,
            pg_indexes_size('outbox') / 1024 AS index_kb
     FROM pg_stat_user_tables WHERE relname = 'outbox'`,
  );
  const r = rows[0];
  return r
    ? `outbox live/dead ${r.live}/${r.dead}, vacuums auto/relay ${r.autovacuums}/${r.vacuums}, indexes ${r.index_kb} KB`
    : 'no outbox statistics';
}

/**
 * Fills `outbox_sent` with `count` rows already sent (as a day of `OUTBOX_RETENTION_MS` keeps
 * them), then VACUUM ANALYZE, as a database that ran for a while would have it.
 */
async function keepSentRows(pool: pg.Pool, count: number): Promise<void> {
  for (let from = 0; from < count; from += 200_000) {
    await pool.query(
      `INSERT INTO outbox_sent (id, event_id, topic, key, shard, value, headers, created_at, sent_at)
       SELECT nextval('outbox_id_seq'), gen_random_uuid(), $1, 'kept' || i, i % 32, repeat('x', 300), '{}'::jsonb,
              now(), now()
       FROM generate_series($2::int, $3::int) i`,
      [topic, from, Math.min(count, from + 200_000) - 1],
    );
  }
  await pool.query('VACUUM ANALYZE outbox_sent');
}

function print(rows: Row[]): void {
  const ms = (v: number) => (Number.isNaN(v) ? '-' : v.toFixed(1));
  const header = [
    'scenario',
    'relays',
    'events',
    'events/s',
    'scheduled → ack p50 ms',
    'p99 ms',
    'max ms',
    'commit → ack p50/p99 ms',
    'CPU s bench/kafka/pg',
    'RSS MB',
  ];
  const lines = rows.map((r) => [
    r.scenario,
    String(r.relays),
    String(r.events),
    r.eventsPerSecond.toFixed(0),
    ms(r.p50),
    ms(r.p99),
    ms(r.max),
    `${ms(r.commitP50)}/${ms(r.commitP99)}`,
    `${r.cpu.self.toFixed(1)}/${r.cpu.kafka.toFixed(1)}/${r.cpu.postgres.toFixed(1)}`,
    r.rssMb.toFixed(0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]?.length ?? 0)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  process.stdout.write(`${[fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n')}\n`);
}

process.stderr.write(`bench-outbox: run=${run}\n`);
// withCleanup: a failure, Ctrl-C, SIGTERM or SIGHUP still drops the database and deletes the topic.
await withCleanup(`bench:outbox run ${run}`, async ({ defer }) => {
  defer(() => deleteTopics(kafka, [topic]));
  defer(() => dropDatabase(databaseUrl.toString()));
  await ensureDatabase(databaseUrl.toString());
  const pool = new pg.Pool({ connectionString: databaseUrl.toString(), max: 8 });
  defer(() => pool.end());
  const sql = readFileSync(fileURLToPath(new URL('../sql/outbox.sql', import.meta.url)), 'utf8');
  await pool.query(sql);
  await ensureTopics(kafka, [{ topic, numPartitions: 6, replicationFactor: 1 }]);
  const producers = [createEventProducer(kafka), createEventProducer(kafka)];
  // Before the topic goes: a relay still sending would have the broker create it again.
  defer(() => Promise.all(producers.map((p) => p.disconnect())));
  for (const p of producers) await p.connect();
  const results: Row[] = [];
  if (KEPT_ROWS > 0) await keepSentRows(pool, KEPT_ROWS);
  // The steady scenario runs after the bursts, on what their drain left behind.
  if (BURST_EVENTS > 0) {
    results.push(await burst(pool, producers, 1));
    results.push(await burst(pool, producers, 2));
  }
  results.push(await steady(pool, producers[0] as EventProducer));
  process.stdout.write(`\nOutbox -> Kafka (${KEYS} aggregates, 6 partitions, acks=all, idempotent producer)\n`);
  print(results);
});
