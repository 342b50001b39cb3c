#!/usr/bin/env node
// Write-path HTTP benchmark (not a test): `pnpm bench:http`. One real post-service and one real
// chat-service (rate limits lifted, tracing off) on real PostgreSQL, Redis and Kafka, driven by
// autocannon in closed loop (N connections, each sends when its last answer arrived), then an
// open loop (`openLoop`: requests due at a fixed rate over an undici pool, latency from each due
// time, so a server that falls behind shows in the latency instead of slowing the load). Printed per phase: throughput, latency percentiles, status codes,
// errors and timeouts, outbox commit → Kafka ack, and CPU seconds of the service, PostgreSQL,
// Kafka and the load generator, in total and per answered request.
import { loadavg } from 'node:os';
import autocannon from 'autocannon';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { cpuOf, waitFor } from '@ripple/testing';
import { kafkaPid, postgresCpu, postgresCpuSince } from './bench-util.js';
import { openLoop } from './open-loop.js';
import { runScoped } from './harness.js';
import type { RunningService } from './harness.js';

const SECONDS = Number(process.env.BENCH_HTTP_SECONDS ?? 10);
const RATE = Number(process.env.BENCH_HTTP_RATE ?? 1000);
const OPEN_CONNECTIONS = Number(process.env.BENCH_HTTP_OPEN_CONNECTIONS ?? 100);
const CLOSED_CONNECTIONS = (process.env.BENCH_HTTP_CONNECTIONS ?? '10,50').split(',').filter(Boolean).map(Number);
const ONLY = process.env.BENCH_HTTP_ONLY?.split(',');
/** A directory: the services write V8 CPU profiles there (`--cpu-prof`) when they stop. */
const CPU_PROF_DIR = process.env.BENCH_HTTP_CPU_PROF;
const nodeArgs = CPU_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${CPU_PROF_DIR}`] : [];

/** A service's /metrics text. Scraping also restarts prom-client's event-loop delay histogram. */
async function scrape(service: RunningService): Promise<string> {
  return (await fetch(`${service.url}/metrics`)).text();
}

/** Cumulative `outbox_publish_latency_seconds` buckets (le → count) from a /metrics text. */
function outboxBuckets(text: string): Map<string, number> {
  const buckets = new Map<string, number>();
  for (const m of text.matchAll(/^outbox_publish_latency_seconds_bucket\{le="([^"]+)"[^}]*\} (\d+)/gm)) {
    buckets.set(m[1] ?? '', Number(m[2]));
  }
  return buckets;
}

/** The value of a sample line `name{...} value` (summed over its label sets), or NaN. */
function sample(text: string, name: string): number {
  let sum = Number.NaN;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'gm'))) {
    sum = (Number.isNaN(sum) ? 0 : sum) + Number(m[1]);
  }
  return sum;
}

/** The upper bound of the bucket holding the 99th percentile of what was published in between. */
function outboxP99(before: Map<string, number>, after: Map<string, number>): string {
  const delta = [...after].map(([le, n]) => [le, n - (before.get(le) ?? 0)] as const);
  const total = delta.find(([le]) => le === '+Inf')?.[1] ?? 0;
  if (total === 0) return '-';
  const at = delta.find(([, n]) => n >= 0.99 * total)?.[0] ?? '+Inf';
  return at === '+Inf' ? '>60000' : `≤${Math.round(Number(at) * 1000)}`;
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
  outbox: string;
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
  const at = (p: number) =>
    Math.round(result.latenciesMs[Math.min(result.answered - 1, Math.floor(p * result.answered))] ?? Number.NaN);
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

async function phase(scenario: string, service: RunningService, drive: () => Promise<Drive>): Promise<Row> {
  const kafka = kafkaPid();
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
    outbox: `${outboxP99(outboxBuckets(metrics0), outboxBuckets(metrics1))} / ${await backlog(service)}`,
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
const rows = await runScoped('bh', async ({ iso, spawn }) => {
  const rows: Row[] = [];
  const env = { ...iso.env, RATE_LIMIT_MAX: '100000000' };
  const secret = jwtSecret(iso.jwtSecretText);
  const token = await signAccessToken(secret, `bh${iso.run}`, { ttlSeconds: 3600 });
  const want = (name: string) => ONLY === undefined || ONLY.includes(name);
  const targets: [string, RunningService, string][] = [];
  if (want('post')) {
    const post = await spawn(
      'post-service',
      { ...env, DATABASE_URL: iso.databaseUrl('post-service') },
      60_000,
      nodeArgs,
    );
    targets.push(['POST /posts', post, `${post.url}/posts`]);
  }
  if (want('chat')) {
    const chat = await spawn(
      'chat-service',
      { ...env, DATABASE_URL: iso.databaseUrl('chat-service') },
      60_000,
      nodeArgs,
    );
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
    targets.push(['POST /rooms/:roomId/messages', chat, `${chat.url}/rooms/${id}/messages`]);
  }
  const pids = targets.map(([, service]) => service.process.pid).join(',');
  process.stdout.write(`bench-http: run=${iso.run} pids=${pids}\n`);
  const body = JSON.stringify({ body: 'x'.repeat(100) });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  for (const [route, service, url] of targets) {
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
    for (const connections of CLOSED_CONNECTIONS) {
      rows.push(
        await phase(`${route}, closed loop ${connections} conn`, service, () => closedLoop(request, connections)),
      );
    }
    rows.push(
      await phase(`${route}, open loop ${RATE}/s (${OPEN_CONNECTIONS} conn)`, service, () =>
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
  'outbox p99 ms / backlog',
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
  r.outbox,
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
