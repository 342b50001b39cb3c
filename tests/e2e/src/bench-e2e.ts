#!/usr/bin/env node
// End-to-end benchmark (not a test): `pnpm bench:e2e`. POST /posts → every subscribed socket,
// through one real post-service (transaction + outbox → Kafka) and BENCH_E2E_GATEWAYS real gateway
// processes, on the shared Kafka, Redis and PostgreSQL. BENCH_E2E_CLIENTS sockets, each its own
// user (so each holds its user channel), each subscribed to BENCH_E2E_PER_CLIENT of
// BENCH_E2E_CREATORS `creator:` channels, are held by bench:peers' client processes (bare `ws`,
// at most BENCH_E2E_SOCKETS_PER_PROCESS each) and spread round-robin over the gateways. After a
// warm-up (one post, then BENCH_E2E_WARMUP_SECONDS of the same loop, not counted), posts go
// open loop (open-loop.ts) at BENCH_E2E_RATE posts/s for BENCH_E2E_SECONDS, each as the next
// creator in turn; every delivery's latency counts from its post's due time, i.e. the start of its
// HTTP request or the moment it should have started when the sender fell behind. The service runs
// with its defaults (rate limits, load shedding), so a shed post shows as a 503, not as speed.
// Prints one table: connect rate, HTTP answers and latency, deliveries owed and received,
// POST → socket p50/p90/p99/max, cross-node messages, gateway RSS, and the CPU seconds of every
// process over the posting phase.
// Issue 12's figures: the defaults (10,000 clients × 5 of 1,000 creators, 1,000 posts/s, one
// gateway), and the scale-out BENCH_E2E_GATEWAYS=3 BENCH_E2E_CLIENTS=50000.
import { loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { payload } from '@ripple/bench-peers/dialects';
import { mergeHistograms, percentile } from '@ripple/bench-peers/report';
import { rssMb } from '@ripple/bench-peers/procs';
import { Worker } from '@ripple/bench-peers/rpc';
import { Redis } from 'ioredis';
import { cpuOf, cpuProfileArgs, registryCompleteIn, testInfra, waitUntil } from '@ripple/testing';
import { kafkaPid, postgresCpu, postgresCpuSince, redisPid, sample } from './bench-util.js';
import { peakRssOf } from './chaos/cluster.js';
import { runScoped } from './harness.js';
import type { RunningService } from './harness.js';
import { latencyAt, openLoop } from './open-loop.js';

const knob = (name: string, fallback: number, min = 1): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be an integer of at least ${min}`);
  return value;
};
const CLIENTS = knob('BENCH_E2E_CLIENTS', 10_000);
const CREATORS = knob('BENCH_E2E_CREATORS', 1_000);
const PER_CLIENT = knob('BENCH_E2E_PER_CLIENT', 5);
const RATE = knob('BENCH_E2E_RATE', 1_000);
const SECONDS = knob('BENCH_E2E_SECONDS', 10);
const WARMUP_SECONDS = knob('BENCH_E2E_WARMUP_SECONDS', 2, 0);
const GATEWAYS = knob('BENCH_E2E_GATEWAYS', 1);
/** Below the 20,000 open files a process may hold here. */
const PER_PROCESS = knob('BENCH_E2E_SOCKETS_PER_PROCESS', 10_000);
/** Keep-alive connections of the open loop. */
const CONNECTIONS = knob('BENCH_E2E_HTTP_CONNECTIONS', 100);
/** How long to wait for the last deliveries after the last answer, ms. */
const SETTLE_MS = knob('BENCH_E2E_SETTLE_MS', 30_000);
/** A directory: post-service and the gateways write V8 CPU profiles there (`--cpu-prof`) when they stop. */
const nodeArgs = cpuProfileArgs(process.env.BENCH_E2E_CPU_PROF);
if (PER_CLIENT > CREATORS) throw new Error('BENCH_E2E_PER_CLIENT must not exceed BENCH_E2E_CREATORS');

const clientScript = new URL(import.meta.resolve('@ripple/bench-peers/client'));

/** Sockets subscribed to each creator: socket g takes creators (g × PER_CLIENT + k) mod CREATORS (client.ts). */
function subscribersPerCreator(): number[] {
  const count = new Array<number>(CREATORS).fill(0);
  for (let g = 0; g < CLIENTS; g++)
    for (let k = 0; k < PER_CLIENT; k++) {
      const c = (g * PER_CLIENT + k) % CREATORS;
      count[c] = (count[c] ?? 0) + 1;
    }
  return count;
}

const scrape = async (s: RunningService): Promise<string> => (await fetch(`${s.url}/metrics`)).text();
const mb = (bytes: number | undefined) => (bytes === undefined ? '-' : (bytes / 2 ** 20).toFixed(0));
const secondsSince = (t: number) => ((performance.now() - t) / 1000).toFixed(1);
const say = (line: string) => process.stdout.write(`bench-e2e: ${line}\n`);

interface ClientStats {
  received: number;
  lastAt: number;
  max: number;
  histogram: [number, number][];
}

await runScoped('be', async ({ iso, spawn, defer }) => {
  const load0 = loadavg()[0] ?? 0;
  const secret = jwtSecret(iso.jwtSecretText);
  const service = await spawn(
    'post-service',
    { ...iso.env, DATABASE_URL: iso.databaseUrl('post-service') },
    undefined,
    nodeArgs,
  );
  const gateways: RunningService[] = [];
  for (let g = 0; g < GATEWAYS; g++) {
    gateways.push(
      await spawn(
        'fanout-gateway',
        {
          ...iso.env,
          NODE_ID: `be${g}-${iso.run}`,
          KAFKA_GROUP_ID: `be.${iso.run}`,
          // The sockets are gone when the run ends: stop at once.
          DRAIN_WINDOW_MS: '0',
        },
        undefined,
        nodeArgs,
      ),
    );
  }

  // The clients: one process per PER_PROCESS sockets, socket g on gateway g mod GATEWAYS.
  const processes = Math.ceil(CLIENTS / PER_PROCESS);
  const workers = Array.from({ length: processes }, (_, p) => {
    const worker = Worker.fork(`client-${p}`, clientScript);
    defer(() => worker.kill());
    return worker;
  });
  const connectStart = performance.now();
  await Promise.all(
    workers.map(async (worker, p) => {
      const first = p * PER_PROCESS;
      const count = Math.min(PER_PROCESS, CLIENTS - first);
      // Opened one gateway's share after the other; the channels a socket takes depend on its place
      // in the process (client.ts), so the process's sockets together take what subscribersPerCreator counts.
      for (let g = 0; g < GATEWAYS; g++) {
        const mine = Array.from({ length: count }, (_, k) => first + k).filter((i) => i % GATEWAYS === g);
        if (mine.length === 0) continue;
        const tokens = await Promise.all(mine.map((i) => signAccessToken(secret, `u${i}`, { ttlSeconds: 7200 })));
        await worker.call('open', {
          peer: 'ripple',
          port: gateways[g]?.port,
          token: tokens,
          count: mine.length,
          first,
        });
      }
    }),
  );
  const connectSeconds = (performance.now() - connectStart) / 1000;
  say(`${CLIENTS} sockets connected and authenticated over ${GATEWAYS} gateway(s) in ${connectSeconds.toFixed(1)} s`);
  const subscribeStart = performance.now();
  await Promise.all(
    workers.map((worker) =>
      worker.call('subscribe', { peer: 'ripple', perClient: PER_CLIENT, channelCount: CREATORS }),
    ),
  );
  say(`${CLIENTS * PER_CLIENT} subscriptions acknowledged in ${secondsSince(subscribeStart)} s`);
  const connectedRss = gateways.map((g) => rssMb(g.process.pid).toFixed(0));
  // Posting starts once the registry is complete (one lease, REGISTRY_HEARTBEAT_MS × 3 = 15 s,
  // after the first gateway's first heartbeat): until then every routed batch goes to every
  // gateway through Redis Pub/Sub, what a fresh registry costs once, not the steady state.
  const registry = new Redis(testInfra.redisUrl);
  defer(() => Promise.resolve(registry.disconnect()));
  await waitUntil(
    'a complete registry',
    60_000,
    async () => (await registryCompleteIn(registry, iso.env.REDIS_KEY_PREFIX, 15_000)) === 0,
  );

  // Creator n posts as user `c<n>`, so its posts go to `creator:c<n>`, the bench channel c<n>.
  const tokens = await Promise.all(
    Array.from({ length: CREATORS }, (_, n) => signAccessToken(secret, `c${n}`, { ttlSeconds: 7200 })),
  );
  const owed = subscribersPerCreator();
  const total = async () =>
    (await Promise.all(workers.map((w) => w.call<ClientStats>('stats')))).reduce((sum, s) => sum + s.received, 0);
  /** Posts open loop at RATE for `seconds`; resolves with the HTTP figures and the deliveries owed for its 201s. */
  const post = async (seconds: number) => {
    let owedNow = 0;
    const http = await openLoop({
      url: `${service.url}/posts`,
      headers: {},
      body: '',
      each: (i, dueAtMs) => ({
        headers: { authorization: `Bearer ${tokens[i % CREATORS]}`, 'content-type': 'application/json' },
        body: JSON.stringify({ body: payload(Math.round(dueAtMs)) }),
      }),
      onAnswer: (i, status) => {
        if (status === 201) owedNow += owed[i % CREATORS] ?? 0;
      },
      rate: RATE,
      connections: CONNECTIONS,
      seconds,
      timeoutMs: 10_000,
    });
    return { http, owed: owedNow };
  };
  // Warm-up, not counted: one post through every process's cold delivery path, then the open loop
  // at the measured rate (the benchmark's HTTP client, its connections, the service's pool and
  // JIT): without it, the first second's answers (p99 ~150 ms, max ~900 ms, the benchmark's own
  // undici compiling with every due request waiting, as bench:http found) were p99 of the run.
  const warmUp = await fetch(`${service.url}/posts`, {
    method: 'POST',
    headers: { authorization: `Bearer ${tokens[0]}`, 'content-type': 'application/json' },
    body: JSON.stringify({ body: payload(Date.now()) }),
  });
  if (warmUp.status !== 201) throw new Error(`the warm-up post answered ${warmUp.status}: ${await warmUp.text()}`);
  await waitUntil('the warm-up post at its subscribers', 60_000, async () => (await total()) >= (owed[0] ?? 0));
  const warm = WARMUP_SECONDS > 0 ? await post(WARMUP_SECONDS) : undefined;
  await waitUntil(
    'the warm-up deliveries',
    SETTLE_MS,
    async () => (await total()) >= (owed[0] ?? 0) + (warm?.owed ?? 0),
  );
  await Promise.all(workers.map((w) => w.call('reset')));

  const pids = {
    post: service.process.pid,
    gateways: gateways.map((g) => g.process.pid),
    kafka: kafkaPid(),
    redis: redisPid(),
    clients: workers.map((w) => w.pid),
  };
  const cpuNow = () => ({
    post: cpuOf(pids.post),
    gateways: pids.gateways.map(cpuOf),
    kafka: cpuOf(pids.kafka),
    redis: cpuOf(pids.redis),
    clients: pids.clients.reduce<number>((sum, pid) => sum + cpuOf(pid), 0),
    self: ((usage) => (usage.user + usage.system) / 1e6)(process.cpuUsage()),
  });
  const nodeMessages = async () =>
    (await Promise.all(gateways.map(scrape))).map((t) => sample(t, 'gateway_node_messages_sent_total') || 0);
  const messages0 = await nodeMessages();
  const cpu0 = cpuNow();
  const pg0 = postgresCpu();

  const { http, owed: expected } = await post(SECONDS);
  await waitUntil('every delivery', SETTLE_MS, async () => (await total()) >= expected).catch(() => undefined);
  const cpu1 = cpuNow();
  const pgCpu = postgresCpuSince(pg0);
  const messages1 = await nodeMessages();
  const stats = await Promise.all(workers.map((w) => w.call<ClientStats>('stats', { histogram: true })));
  const hist = mergeHistograms(stats.map((s) => s.histogram));
  const received = stats.reduce((sum, s) => sum + s.received, 0);
  const at = (p: number) => Math.round(latencyAt(http, p));
  const statuses = [...http.statuses].map(([code, n]) => `${code}×${n}`).join(' ');
  const accepted = http.statuses.get(201) ?? 0;
  const crossNode = messages1.reduce((sum, m, g) => sum + m - (messages0[g] ?? 0), 0);
  const cpu = [
    (cpu1.post - cpu0.post).toFixed(1),
    cpu1.gateways.map((c, g) => (c - (cpu0.gateways[g] ?? 0)).toFixed(1)).join('+'),
    (cpu1.kafka - cpu0.kafka).toFixed(1),
    (cpu1.redis - cpu0.redis).toFixed(1),
    pgCpu.toFixed(1),
    (cpu1.clients - cpu0.clients).toFixed(1),
    (cpu1.self - cpu0.self).toFixed(1),
  ].join('/');
  const peakRss = gateways.map((g) => mb(peakRssOf(g.process.pid)));
  process.stdout.write(
    [
      '',
      `bench-e2e — ${new Date().toISOString()}, Node ${process.version}, 1-min load average ${load0.toFixed(1)} at start and ${(loadavg()[0] ?? 0).toFixed(1)} at end.`,
      `${CLIENTS} clients (own user channel + ${PER_CLIENT} of ${CREATORS} creator channels each) over ${GATEWAYS} gateway(s); posts open loop at ${RATE}/s for ${SECONDS} s over ${CONNECTIONS} connections; latency from each post's due time.`,
      warm === undefined
        ? 'No warm-up loop (BENCH_E2E_WARMUP_SECONDS=0): the first second runs cold.'
        : `Warm-up before it, not counted: ${warm.http.answered} posts in ${WARMUP_SECONDS} s at the same rate, HTTP p50 / p99 / max ${Math.round(latencyAt(warm.http, 0.5))} / ${Math.round(latencyAt(warm.http, 0.99))} / ${Math.round(latencyAt(warm.http, 1))} ms.`,
      '',
      '| connect+auth /s | posts answered | statuses | HTTP p50 / p99 ms | deliveries owed | received | POST → socket p50 | p90 | p99 | max ms | cross-node messages | gateway RSS MB connected / peak | CPU s post/gw/kafka/redis/pg/clients/bench |',
      '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
      `| ${(CLIENTS / connectSeconds).toFixed(0)} | ${http.answered} (${(http.answered / http.elapsedSeconds).toFixed(0)}/s, ${http.errors} errors, ${http.timeouts} timeouts) | ${statuses} | ${at(0.5)} / ${at(0.99)} | ${expected} (${accepted} posts) | ${received} (${expected - received} missing) | ${percentile(hist, 50)} | ${percentile(hist, 90)} | ${percentile(hist, 99)} | ${Math.max(0, ...stats.map((s) => s.max))} | ${crossNode} | ${connectedRss.join('+')} / ${peakRss.join('+')} | ${cpu} |`,
      '',
    ].join('\n'),
  );
  if (received < expected) process.exitCode = 1;
});
