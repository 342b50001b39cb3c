#!/usr/bin/env node
// Write-path HTTP benchmark (not a test): `pnpm bench:http`. One real post-service and one real
// chat-service (rate limits lifted, tracing off) on real PostgreSQL, Redis and Kafka, driven by
// autocannon in closed loop (N connections, each sends when its last answer arrived), then an
// open loop (`openLoop`: requests due at a fixed rate over an undici pool, latency from each due
// time, so a server that falls behind shows in the latency instead of slowing the load). Printed per phase: throughput, latency percentiles, status codes,
// errors and timeouts, outbox commit → Kafka ack (`outbox_commit_to_ack_seconds`: from the commit
// returning in the service), and the upper bound from each row's transaction start (the relay's
// `outbox_publish_latency_seconds`, and per row from the outbox table), and CPU seconds of the service, PostgreSQL,
// Kafka and the load generator, in total and per answered request.
import { loadavg } from 'node:os';
import autocannon from 'autocannon';
import pg from 'pg';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { cpuOf, cpuProfileArgs, waitFor } from '@ripple/testing';
import { kafkaPid, postgresCpu, postgresCpuSince, sample } from './bench-util.js';
import { latencyAt, openLoop } from './open-loop.js';
import { runScoped } from './harness.js';
import type { RunningService } from './harness.js';

const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 10);
const RATE = Number(process.env.BENCH_HTTP_RATE ?? 1000);
const OPEN_CONNECTIONS = Number(process.env.BENCH_HTTP_OPEN_CONNECTIONS ?? 100);
const CLOSED_CONNECTIONS = (process.env.BENCH_HTTP_CONNECTIONS ?? '10,50').split(',').filter(Boolean).map(Number);
const ONLY = process.env.BENCH_HTTP_ONLY?.split(',');
/** A directory: the services write V8 CPU profiles there (`--cpu-prof`) when they stop. */
const nodeArgs = cpuProfileArgs(process.env.BENCH_HTTP_CPU_PROF);

/** A service's /metrics text. Scraping also restarts prom-client's event-loop delay histogram. */
async function scrape(service: RunningService): Promise<string> {
  return (await fetch(`${service.url}/metrics`)).text();
}

/** Cumulative buckets (le → count) of the histogram `name` from a /metrics text. */
function buckets(text: string, name: string): Map<string, number> {
  const found = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"[^}]*\\} (\\d+)`, 'gm'))) {
    found.set(m[1] ?? '', Number(m[2]));
  }
  return found;
}

/**
 * Quantile `q` in ms of what the histogram `name` observed between two /metrics texts, as
 * Prometheus' `histogram_quantile` estimates it (linear within the bucket that holds it; `>N`
 * beyond the last finite bucket), or `-` when it observed nothing.
 */
function bucketQuantile(before: string, after: string, name: string, q: number): string {
  const start = buckets(before, name);
  const delta = [...buckets(after, name)].map(([le, n]) => [Number(le), n - (start.get(le) ?? 0)] as const);
  const total = delta.at(-1)?.[1] ?? 0;
  if (total === 0) return '-';
  const rank = q * total;
  const at = delta.findIndex(([, n]) => n >= rank);
  const [upper, count] = delta[at] ?? [Number.POSITIVE_INFINITY, total];
  const [lower, below] = delta[at - 1] ?? [0, 0];
  if (upper === Number.POSITIVE_INFINITY) return `>${Math.round(lower * 1000)}`;
  return (1000 * (lower + ((upper - lower) * (rank - below)) / Math.max(1, count - below))).toFixed(1);
}

/** The database server's clock now (outbox rows are stamped with it). */
async function dbNow(db: pg.Pool): Promise<Date> {
  const { rows } = await db.query<{ now: Date }>('SELECT clock_timestamp() AS now');
  return rows[0]?.now ?? new Date(Number.NaN);
}

/**
 * Outbox latency of the rows written since `since`, measured per row from the table itself: from
 * `created_at` (the start of the writing transaction, so an upper bound of commit → ack) to
 * `outbox_sent.sent_at` (the relay's mark, the statement it runs right after the broker's acknowledgement).
 * Waits up to 30 s for those rows to be sent; a row still unsent then counts as sent now. Returns
 * `p50/p99` in ms, or `-` when no row was written.
 */
async function outboxLatency(db: pg.Pool, since: Date): Promise<string> {
  await waitFor("the phase's outbox rows sent", 30_000, async () => {
    const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox WHERE created_at >= $1', [
      since,
    ]);
    return rows[0]?.n === 0 ? true : undefined;
  }).catch(() => undefined);
  const { rows } = await db.query<{ p50: number | null; p99: number | null }>(
    `SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) AS p99
     FROM (SELECT 1000 * EXTRACT(EPOCH FROM sent_at - created_at)::float8 AS ms FROM outbox_sent WHERE created_at >= $1
           UNION ALL SELECT 1000 * EXTRACT(EPOCH FROM clock_timestamp() - created_at)::float8 FROM outbox WHERE created_at >= $1
          ) latencies`,
    [since],
  );
  const { p50, p99 } = rows[0] ?? {};
  return p50 == null || p99 == null ? '-' : `${Math.round(p50)}/${Math.round(p99)}`;
}

async function backlog(service: RunningService): Promise<string> {
  const text = await (await fetch(`${service.url}/metrics`)).text();
  return /^outbox_backlog_rows(?:\{[^}]*\})? (\S+)/m.exec(text)?.[1] ?? '?';
}

interface Row {
  scenario: string;
  requests: number;
  rps: string;
  p50: string;
  p99: string;
  max: string;
  statuses: string;
  errors: string;
  /**
   * Commit → Kafka ack p50/p99 in ms, from `outbox_commit_to_ack_seconds` (the commit returning in
   * the service to the broker's acknowledgement: the true figure, bucket upper bounds).
   */
  commitToAck: string;
  /** `outbox_publish_latency_seconds` p99 (transaction start → ack: an upper bound) and the backlog. */
  outbox: string;
  /** Outbox transaction start → Kafka ack p50/p99 in ms, per row (`outboxLatency`). */
  outboxLatency: string;
  /** The service's event-loop delay p99/max in ms over the phase, and its GC seconds. */
  loop: string;
  cpu: string;
  /** CPU milliseconds per answered request of each process (same order as `cpu`). */
  cpuPerRequest: string;
}

/** What one phase's load generator reports. */
interface Drive {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  max: number;
  statuses: string;
  errors: number;
  timeouts: number;
}

/** Closed loop: autocannon, each connection sends when its last answer arrived. */
async function closedLoop(request: Request, connections: number): Promise<Drive> {
  const result = await autocannon({
    url: request.url,
    method: 'POST',
    headers: request.headers,
    body: request.body,
    connections,
    duration: SECONDS,
    timeout: 10,
  });
  return {
    requests: result.requests.total,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    statuses: Object.entries(result.statusCodeStats as unknown as Record<string, { count: number }>)
      .map(([code, { count }]) => `${code}:${count}`)
      .join(' '),
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

/** Open loop at a fixed rate, latency from each request's due time (see `openLoop`). */
async function fixedRate(request: Request, connections: number, rate: number): Promise<Drive> {
  const result = await openLoop({ ...request, rate, connections, seconds: SECONDS, timeoutMs: 10_000 });
  const at = (p: number) => Math.round(latencyAt(result, p));
  return {
    requests: result.answered,
    rps: result.answered / result.elapsedSeconds,
    p50: at(0.5),
    p99: at(0.99),
    max: Math.round(result.latenciesMs.at(-1) ?? Number.NaN),
    statuses: [...result.statuses].map(([code, count]) => `${code}:${count}`).join(' '),
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

interface Request {
  url: string;
  headers: Record<string, string>;
  body: string;
}

async function phase(
  scenario: string,
  service: RunningService,
  db: pg.Pool,
  drive: () => Promise<Drive>,
): Promise<Row> {
  const kafka = kafkaPid();
  const since = await dbNow(db);
  const cpu0 = [cpuOf(service.process.pid), postgresCpu(), cpuOf(kafka), process.cpuUsage()] as const;
  // This scrape restarts the event-loop delay histogram, so the next one covers the phase only.
  const metrics0 = await scrape(service);
  const result = await drive();
  const cpuBench = process.cpuUsage(cpu0[3]);
  const cpu = [
    cpuOf(service.process.pid) - cpu0[0],
    postgresCpuSince(cpu0[1]),
    cpuOf(kafka) - cpu0[2],
    (cpuBench.user + cpuBench.system) / 1e6,
  ];
  const metrics1 = await scrape(service);
  const ms = (seconds: number) => (1000 * seconds).toFixed(0);
  const gcSeconds =
    sample(metrics1, 'nodejs_gc_duration_seconds_sum') - sample(metrics0, 'nodejs_gc_duration_seconds_sum');
  return {
    scenario,
    requests: result.requests,
    rps: result.rps.toFixed(0),
    p50: String(result.p50),
    p99: String(result.p99),
    max: String(result.max),
    statuses: result.statuses,
    errors: `${result.errors}/${result.timeouts}`,
    commitToAck: ['0.5', '0.99']
      .map((q) => bucketQuantile(metrics0, metrics1, 'outbox_commit_to_ack_seconds', Number(q)))
      .join('/'),
    outbox: `${bucketQuantile(metrics0, metrics1, 'outbox_publish_latency_seconds', 0.99)} / ${await backlog(service)}`,
    outboxLatency: await outboxLatency(db, since),
    loop:
      `${ms(sample(metrics1, 'nodejs_eventloop_lag_p99_seconds'))}/` +
      `${ms(sample(metrics1, 'nodejs_eventloop_lag_max_seconds'))} / ${gcSeconds.toFixed(2)}`,
    cpu: cpu.map((c) => c.toFixed(1)).join('/'),
    cpuPerRequest: cpu.map((c) => ((1000 * c) / Math.max(1, result.requests)).toFixed(2)).join('/'),
  };
}

/** Fault injection for the harness test: `after-start` fails once the services have taken writes. */
const FAIL = process.env.BENCH_HTTP_FAIL;

const load0 = loadavg();
const rows = await runScoped('bh', async ({ iso, spawn, defer }) => {
  const rows: Row[] = [];
  const env = { ...iso.env, RATE_LIMIT_MAX: '100000000' };
  const secret = jwtSecret(iso.jwtSecretText);
  const token = await signAccessToken(secret, `bh${iso.run}`, { ttlSeconds: 3600 });
  const want = (name: string) => ONLY === undefined || ONLY.includes(name);
  const targets: [string, RunningService, string, pg.Pool][] = [];
  /** A small pool on a service's database, for the outbox's per-row latency. */
  const database = (url: string): pg.Pool => {
    const db = new pg.Pool({ connectionString: url, max: 1 });
    defer(() => db.end());
    return db;
  };
  if (want('post')) {
    const databaseUrl = iso.databaseUrl('post-service');
    const post = await spawn('post-service', { ...env, DATABASE_URL: databaseUrl }, 60_000, nodeArgs);
    targets.push(['POST /posts', post, `${post.url}/posts`, database(databaseUrl)]);
  }
  if (want('chat')) {
    const databaseUrl = iso.databaseUrl('chat-service');
    const chat = await spawn('chat-service', { ...env, DATABASE_URL: databaseUrl }, 60_000, nodeArgs);
    // A service that has just started on a busy machine may shed its first request (503 with
    // Retry-After, when its start-up work still shows in the measured event-loop delay); the
    // benchmark waits as a client would.
    const res = await waitFor('POST /rooms answered other than 503', 60_000, async () => {
      const answer = await fetch(`${chat.url}/rooms`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'bench' }),
      });
      return answer.status === 503 ? undefined : answer;
    });
    if (res.status !== 201) throw new Error(`POST /rooms answered ${res.status}: ${await res.text()}`);
    const { id } = (await res.json()) as { id: string };
    targets.push(['POST /rooms/:roomId/messages', chat, `${chat.url}/rooms/${id}/messages`, database(databaseUrl)]);
  }
  const pids = targets.map(([, service]) => service.process.pid).join(',');
  process.stdout.write(`bench-http: run=${iso.run} pids=${pids}\n`);
  const body = JSON.stringify({ body: 'x'.repeat(100) });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  for (const [route, service, url, db] of targets) {
    // Warm-up: connections, JIT, the pool and the outbox relay's first batches.
    await autocannon({
      url,
      method: 'POST',
      body,
      connections: 10,
      amount: 500,
      headers,
    });
    if (FAIL === 'after-start') throw new Error('BENCH_HTTP_FAIL=after-start: failing on purpose');
    const request = { url, headers, body };
    // And the open loop's own client, unmeasured: the first open loop of a process spent its first
    // ~0.5 s compiling undici (its HTTP parser, JIT) with every request due meanwhile waiting, which
    // made p99 of whichever route came first (posts) 150–550 ms against a trivial server too.
    await openLoop({ ...request, rate: RATE, connections: OPEN_CONNECTIONS, seconds: 1, timeoutMs: 10_000 });
    for (const connections of CLOSED_CONNECTIONS) {
      rows.push(
        await phase(`${route}, closed loop ${connections} conn`, service, db, () => closedLoop(request, connections)),
      );
    }
    rows.push(
      await phase(`${route}, open loop ${RATE}/s (${OPEN_CONNECTIONS} conn)`, service, db, () =>
        fixedRate(request, OPEN_CONNECTIONS, RATE),
      ),
    );
  }
  return rows;
});

const header = [
  'scenario',
  'requests',
  'req/s',
  'p50 ms',
  'p99 ms',
  'max ms',
  'status codes',
  'errors/timeouts',
  'commit → ack p50/p99 ms',
  'outbox tx → ack p99 ms (histogram) / backlog',
  'outbox tx → ack p50/p99 ms (rows)',
  'loop delay p99/max ms / GC s',
  'CPU s service/pg/kafka/bench',
  'CPU ms per request service/pg/kafka/bench',
];
const lines = rows.map((r) => [
  r.scenario,
  String(r.requests),
  r.rps,
  r.p50,
  r.p99,
  r.max,
  r.statuses,
  r.errors,
  r.commitToAck,
  r.outbox,
  r.outboxLatency,
  r.loop,
  r.cpu,
  r.cpuPerRequest,
]);
const load1 = loadavg();
process.stdout.write(
  `\nWrite path, ${SECONDS} s per phase; load average ${load0.map((l) => l.toFixed(2)).join(' ')} at the start, ` +
    `${load1.map((l) => l.toFixed(2)).join(' ')} at the end\n`,
);
process.stdout.write(`| ${header.join(' | ')} |\n| ${header.map(() => '---').join(' | ')} |\n`);
for (const l of lines) process.stdout.write(`| ${l.join(' | ')} |\n`);
process.exit(0);
