#!/usr/bin/env node
// Tracing overhead benchmark (not a test): `pnpm bench:tracing`. The same workload runs twice on
// real processes (post-service and one gateway, real Kafka, Redis and PostgreSQL): tracing off,
// then on, with every span exported over OTLP/HTTP to a receiver in this process. Printed side by
// side: HTTP answer time of POST /posts, POST → WebSocket receive latency, CPU seconds of each
// process, spans exported.
import { performance } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { waitUntil, cpuOf } from '@ripple/testing';
import { percentiles } from './bench-util.js';
import { runScoped } from './harness.js';
import type { isolatedRun } from './harness.js';
import { startOtlpReceiver } from './otlp-receiver.js';

const RATE = Number(process.env.BENCH_TRACING_RATE ?? 100);
const SECONDS = Number(process.env.BENCH_TRACING_SECONDS ?? 10);

interface Row {
  mode: string;
  posts: number;
  http: { p50: string; p99: string };
  e2e: { p50: string; p99: string };
  postCpu: string;
  gatewayCpu: string;
  spans: number;
}

async function runMode(mode: 'off' | 'on'): Promise<Row> {
  // runScoped stops the services and removes the run's topics, keys and databases, also on failure.
  return runScoped('bt', async ({ iso, spawn }) => {
    const receiver = mode === 'on' ? await startOtlpReceiver() : undefined;
    try {
      return await measure(mode, iso, spawn, receiver);
    } finally {
      await receiver?.close();
    }
  });
}

async function measure(
  mode: 'off' | 'on',
  iso: ReturnType<typeof isolatedRun>,
  spawnService: Parameters<Parameters<typeof runScoped>[1]>[0]['spawn'],
  receiver: Awaited<ReturnType<typeof startOtlpReceiver>> | undefined,
): Promise<Row> {
  const otel: Record<string, string> = receiver
    ? { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '500' }
    : {};
  const gateway = await spawnService('fanout-gateway', { ...iso.env, ...otel, KAFKA_GROUP_ID: `bt.${iso.run}` });
  const post = await spawnService('post-service', {
    ...iso.env,
    ...otel,
    DATABASE_URL: iso.databaseUrl('post-service'),
    RATE_LIMIT_MAX: '1000000',
  });
  const secret = jwtSecret(iso.jwtSecretText);
  const author = `bt${iso.run}`;
  const token = await signAccessToken(secret, author);
  const arrived = new Map<string, number>();
  const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}/ws?access_token=${await signAccessToken(secret, 'reader')}`);
  ws.on('message', (data: Buffer) => {
    const frame = JSON.parse(data.toString()) as { op: string; event?: { data: { body: string } } };
    if (frame.op === 'event' && frame.event) arrived.set(frame.event.data.body, performance.now());
  });
  await new Promise((resolve) => ws.once('open', resolve));
  ws.send(JSON.stringify({ op: 'subscribe', id: '1', channel: `creator:${author}` }));
  const create = async (body: string) => {
    const res = await fetch(`${post.url}/posts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ body }),
    });
    if (res.status !== 201) throw new Error(`POST /posts answered ${res.status}: ${await res.text()}`);
  };
  for (let i = 0; i < 20; i++) await create(`warm-${i}`);
  await waitUntil('the warm-up posts', 30_000, () => arrived.size >= 20);

  const cpu0 = [cpuOf(post.process.pid), cpuOf(gateway.process.pid)];
  const sent = new Map<string, number>();
  const http: number[] = [];
  const total = RATE * SECONDS;
  const start = performance.now();
  const requests: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const at = start + (i * 1000) / RATE;
    const wait = at - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const body = `m-${i}`;
    sent.set(body, at);
    requests.push(create(body).then(() => void http.push(performance.now() - at)));
  }
  await Promise.all(requests);
  await waitUntil('every post on the socket', 60_000, () => [...sent.keys()].every((b) => arrived.has(b)));
  const cpu1 = [cpuOf(post.process.pid), cpuOf(gateway.process.pid)];
  const e2e = [...sent].map(([body, at]) => Math.round((arrived.get(body) ?? Number.NaN) - at));
  ws.close();
  await Promise.all([post.stop(), gateway.stop()]);
  const spans = receiver?.spans.length ?? 0;
  return {
    mode: mode === 'on' ? 'tracing on (OTLP)' : 'tracing off',
    posts: total,
    http: percentiles(http.map(Math.round)),
    e2e: percentiles(e2e),
    postCpu: ((cpu1[0] ?? 0) - (cpu0[0] ?? 0)).toFixed(1),
    gatewayCpu: ((cpu1[1] ?? 0) - (cpu0[1] ?? 0)).toFixed(1),
    spans,
  };
}

const rows = [await runMode('off'), await runMode('on')];
const header = [
  'mode',
  'posts',
  'HTTP p50/p99 ms',
  'POST→socket p50/p99 ms',
  'CPU s post-service',
  'CPU s gateway',
  'spans',
];
const lines = rows.map((r) => [
  r.mode,
  String(r.posts),
  `${r.http.p50} / ${r.http.p99}`,
  `${r.e2e.p50} / ${r.e2e.p99}`,
  r.postCpu,
  r.gatewayCpu,
  String(r.spans),
]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
const fmt = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
process.stdout.write(`\nTracing overhead: ${RATE} posts/s for ${SECONDS} s, post-service + one gateway\n`);
process.stdout.write(`${[fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n')}\n`);
process.exit(0);
