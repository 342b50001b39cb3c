#!/usr/bin/env node
// Side-by-side benchmark (not a test): `pnpm bench:peers`. Runs Ripple's gateway, Socket.IO with
// the Redis adapter (fed by the Redis emitter) and a raw `ws` server one after the other under the
// same workloads, with the same client processes and a separate publisher process, then a bare
// kafkajs consumer on the same burst; prints one table with every figure's ratio to Socket.IO and
// the CPU seconds of every process beside it. Every process it starts, and every Kafka topic,
// consumer group and Redis key it creates, is removed at the end, on failure and on SIGINT, SIGTERM
// or SIGHUP (withCleanup).
import { readdirSync, statSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { Topics } from '@ripple/events';
import { createKafka, deleteGroups, deleteTopics, dlqTopicOf } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import {
  cleanupAll,
  cpuProfileArgs,
  cpuOf,
  deleteKeys,
  registryCompleteIn,
  runId,
  testInfra,
  waitUntil,
  withCleanup,
} from '@ripple/testing';
import { loadConfig } from './config.js';
import { startBareConsumer } from './kafkajs-alone.js';
import type { PeerName } from './dialects.js';
import { pidOf, rssMb, spawnGateway } from './procs.js';
import type { Figure } from './report.js';
import { mergeHistograms, percentile, renderTable } from './report.js';
import { Worker } from './rpc.js';

const cfg = loadConfig();
const run = runId();
const JWT_SECRET = `bench-peers-${run}-0123456789abcdef`;
const topicPrefix = `benchpeers.${run}.`;
const redisPrefix = `benchpeers:${run}:`;
const sioKey = `${redisPrefix}sio`;
const gatewayGroup = `benchpeers.${run}.gateway`;
const bareGroup = `benchpeers.${run}.kafkajs`;
const kafkaPid = pidOf('java.*kafka.Kafka');
const redisPid = pidOf('redis-server');
const kafka = createKafka({
  brokers: testInfra.kafkaBrokers,
  clientId: 'bench-peers',
  logger: createLogger('bench-peers', 'silent'),
});
const script = (name: string) => new URL(`./${name}.js`, import.meta.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const figures: Figure[] = [];

// Every process it starts, stopped (in the order started) before the topics, groups and keys go.
const stoppers = new Set<() => Promise<void>>();

function fork(name: string, env: Record<string, string> = {}): Worker {
  const worker = Worker.fork(name, script(name.replace(/-\d+$/, '')), env);
  stoppers.add(() => worker.kill());
  return worker;
}

/** CPU seconds of the phase's processes between two calls. */
function cpuMeter(pids: { server?: number; publisher?: number; clients: (number | undefined)[] }): () => string {
  const read = (): number[] => [
    cpuOf(pids.server),
    cpuOf(pids.publisher),
    cpuOf(kafkaPid),
    cpuOf(redisPid),
    pids.clients.reduce<number>((sum, pid) => sum + cpuOf(pid), 0),
  ];
  const before = read();
  return () =>
    read()
      .map((v, i) => (Number.isNaN(v) ? '-' : (v - (before[i] ?? 0)).toFixed(1)))
      .join('/');
}

/**
 * Has Ripple's gateway write a heap snapshot (BENCH_PEERS_HEAP_SNAPSHOTS; SIGUSR2, see
 * startServer) and waits until the file stops growing.
 */
async function heapSnapshot(peer: PeerName, pid: number | undefined): Promise<void> {
  if (cfg.heapSnapshotDir === undefined || peer !== 'ripple' || pid === undefined) return;
  const dir = cfg.heapSnapshotDir;
  const count = () => readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot')).length;
  const before = count();
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 1200 && count() === before; i++) await sleep(100);
  // The file appears when writing starts, empty at first: wait until it has grown and stopped.
  const newest = () =>
    readdirSync(dir)
      .filter((f) => f.endsWith('.heapsnapshot'))
      .map((f) => statSync(`${dir}/${f}`))
      .sort((a, b) => b.mtimeMs - a.mtimeMs)[0]?.size ?? 0;
  for (let size = 0, i = 0; i < 300 && (size === 0 || newest() !== size); i++) {
    size = newest();
    await sleep(2000);
  }
}

interface Peer {
  port: number;
  pid: number | undefined;
  stop(): Promise<void>;
}

async function startServer(peer: PeerName): Promise<Peer> {
  if (peer === 'ripple') {
    const gw = await spawnGateway(
      {
        JWT_SECRET,
        KAFKA_BROKERS: testInfra.kafkaBrokers.join(','),
        KAFKA_TOPIC_PREFIX: topicPrefix,
        KAFKA_GROUP_ID: gatewayGroup,
        REDIS_URL: testInfra.redisUrl,
        REDIS_KEY_PREFIX: redisPrefix,
        // The preloaded burst pauses the gateway (SIGSTOP) while it is handed over: its group must
        // not evict it meanwhile.
        KAFKA_SESSION_TIMEOUT_MS: '30000',
        // A profile is written when the process exits: stop at once rather than be killed.
        ...(cfg.cpuProfDir === undefined ? {} : { DRAIN_WINDOW_MS: '0' }),
      },
      [
        ...cpuProfileArgs(cfg.cpuProfDir),
        ...(cfg.heapSnapshotDir === undefined
          ? []
          : ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${cfg.heapSnapshotDir}`]),
      ],
    );
    const exited = new Promise<void>((r) => gw.process.once('exit', () => r()));
    // SIGTERM first, so its consumer leaves the group (deletable at once); SIGKILL after 15 s (60 s
    // when it has a CPU profile to write).
    const running = () => gw.process.exitCode === null && gw.process.signalCode === null;
    const stop = async () => {
      if (running()) gw.process.kill('SIGTERM');
      await Promise.race([exited, sleep(cfg.cpuProfDir === undefined ? 15_000 : 60_000)]);
      if (running()) gw.process.kill('SIGKILL');
      await exited;
    };
    stoppers.add(stop);
    return { port: gw.port, pid: gw.process.pid, stop };
  }
  const server = fork(peer === 'socketio' ? 'sio-server' : 'ws-server', {
    JWT_SECRET,
    REDIS_URL: testInfra.redisUrl,
    SIO_KEY: sioKey,
  });
  return { port: await server.call<number>('listen'), pid: server.pid, stop: () => server.kill() };
}

/**
 * Runs `handOver` while the server process is stopped (SIGSTOP), then resumes it (SIGCONT, also
 * when `handOver` fails); resolves with the time of the resume (ms since the epoch).
 */
async function paused(pid: number | undefined, handOver: () => Promise<unknown>): Promise<number> {
  if (pid === undefined) throw new Error('the server has no pid to pause');
  process.kill(pid, 'SIGSTOP');
  try {
    await handOver();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  return Date.now();
}

/** Splits `count` sockets over the client processes: [first index, count] each. */
function shares(count: number, processes: number): [number, number][] {
  return Array.from({ length: processes }, (_, k) => {
    const first = Math.floor((count * k) / processes);
    return [first, Math.floor((count * (k + 1)) / processes) - first];
  });
}

/** A burst as the publisher reports it: when it started, and when its last event left the publisher (ms). */
interface Burst {
  start: number;
  sentAt: number;
}

interface Totals {
  received: number;
  lastAt: number;
  histogram: [number, number][];
}
async function totals(clients: Worker[], histogram = false): Promise<Totals> {
  const parts = await Promise.all(
    clients.map((c) =>
      c.call<{ received: number; lastAt: number; histogram: [number, number][] }>('stats', { histogram }),
    ),
  );
  return {
    received: parts.reduce((s, p) => s + p.received, 0),
    lastAt: Math.max(...parts.map((p) => p.lastAt)),
    histogram: mergeHistograms(parts.map((p) => p.histogram)),
  };
}

/** Waits (bounded) until `expected` deliveries arrived; returns the totals at that point. */
async function drain(clients: Worker[], expected: number): Promise<Totals> {
  const end = Date.now() + cfg.BENCH_PEERS_DRAIN_SECONDS * 1000;
  let t = await totals(clients);
  while (t.received < expected && Date.now() < end) {
    await sleep(100);
    t = await totals(clients);
  }
  return totals(clients, true);
}

/** Deliveries expected when each event of a round-robin burst reaches its channel's subscribers. */
function expectedDeliveries(events: number, clients: number, perClient: number, channels: number): number {
  const members = new Array<number>(channels).fill(0);
  for (let g = 0; g < clients; g++)
    for (let c = 0; c < perClient; c++) {
      const ch = (g * perClient + c) % channels;
      members[ch] = (members[ch] ?? 0) + 1;
    }
  let total = 0;
  for (let i = 0; i < events; i++) total += members[i % channels] ?? 0;
  return total;
}

/**
 * Waits until Ripple's registry is complete (one lease, REGISTRY_HEARTBEAT_MS × 3 = 15 s, after
 * the gateway's first heartbeat): until then the gateway sends every routed batch to every node
 * through Redis Pub/Sub, what a fresh registry costs once, not the steady state the peers are
 * measured in.
 */
async function steadyRegistry(): Promise<void> {
  const redis = new Redis(testInfra.redisUrl);
  try {
    await waitUntil(
      'a complete registry',
      60_000,
      async () => (await registryCompleteIn(redis, redisPrefix, 15_000)) === 0,
    );
  } finally {
    redis.disconnect();
  }
}

async function benchPeer(peer: PeerName): Promise<void> {
  const token = await signAccessToken(jwtSecret(JWT_SECRET), 'bench-reader', { ttlSeconds: 3600 });
  const server = await startServer(peer);
  const publisher = fork('publisher', {
    KAFKA_BROKERS: testInfra.kafkaBrokers.join(','),
    KAFKA_TOPIC_PREFIX: topicPrefix,
    REDIS_URL: testInfra.redisUrl,
    SIO_KEY: sioKey,
  });
  await publisher.call('connect', { peer, port: server.port });
  const processes = Math.ceil(
    Math.max(cfg.BENCH_PEERS_SUBSCRIBERS, cfg.BENCH_PEERS_CLIENTS) / cfg.BENCH_PEERS_SOCKETS_PER_PROCESS,
  );
  const clients = Array.from({ length: processes }, (_, k) => fork(`client-${k}`));
  const meter = () => cpuMeter({ server: server.pid, publisher: publisher.pid, clients: clients.map((c) => c.pid) });
  const add = (workload: string, figure: string, value: number, digits: number, cpu: string) =>
    figures.push({ workload, figure, subject: peer, value, digits, cpu });
  const open = (count: number) =>
    Promise.all(
      clients.map((client, k) => {
        const [first, n] = shares(count, processes)[k] ?? [0, 0];
        return client.call<number>('open', { peer, port: server.port, token, count: n, first });
      }),
    );
  const subscribe = (perClient: number, channelCount: number) =>
    Promise.all(clients.map((c) => c.call('subscribe', { peer, perClient, channelCount })));
  const reset = () => Promise.all(clients.map((c) => c.call('reset')));
  const closeAll = () => Promise.all(clients.map((c) => c.call('close')));

  // Warm-up: one subscriber on a channel of its own, published to until it receives (the gateway's
  // consumer has its partitions, the adapter subscribed, the publisher connected).
  await clients[0]?.call('open', { peer, port: server.port, token, count: 1, first: 0 });
  await clients[0]?.call('subscribe', { peer, perClient: 1, channelCount: 1 });
  for (let i = 0; i < 120 && (await totals(clients)).received === 0; i++) {
    await publisher.call('burst', { count: 1, channelCount: 1 });
    await sleep(500);
  }
  if ((await totals(clients)).received === 0) throw new Error(`${peer}: the warm-up event never arrived`);
  if (peer === 'ripple') await steadyRegistry();
  await closeAll();
  await reset();
  await sleep(2000);

  // Workloads 4, 5 and 1: N sockets connect and authenticate, subscribe to one channel, one burst.
  const N = cfg.BENCH_PEERS_SUBSCRIBERS;
  const w4 = `connect + authenticate ${N} sockets`;
  const w5 = `server RSS, ${N} sockets`;
  const w1 = `1 channel x ${N}, ${cfg.BENCH_PEERS_FANOUT_EVENTS}-event burst`;
  const baseline = rssMb(server.pid);
  await heapSnapshot(peer, server.pid);
  let cpu = meter();
  const t0 = performance.now();
  await open(N);
  const seconds = (performance.now() - t0) / 1000;
  const connectCpu = cpu();
  add(w4, 'seconds', seconds, 2, connectCpu);
  add(w4, 'connections/s', N / seconds, 0, connectCpu);
  cpu = meter();
  await subscribe(1, 1);
  await sleep(2000);
  add(w5, 'KiB per subscribed socket (minus empty baseline)', ((rssMb(server.pid) - baseline) * 1024) / N, 1, cpu());
  await heapSnapshot(peer, server.pid);
  if (cfg.connectOnly) {
    await closeAll();
    for (const w of [...clients, publisher]) await w.kill();
    await server.stop();
    return;
  }
  await reset();
  let peak = rssMb(server.pid);
  const sampler = setInterval(() => (peak = Math.max(peak, rssMb(server.pid))), 20);
  cpu = meter();
  const expected1 = N * cfg.BENCH_PEERS_FANOUT_EVENTS;
  const burst1 = await publisher.call<Burst>('burst', {
    count: cfg.BENCH_PEERS_FANOUT_EVENTS,
    channelCount: 1,
  });
  const t1 = await drain(clients, expected1);
  clearInterval(sampler);
  const cpu1 = cpu();
  add(w1, 'deliveries/s', t1.received / ((t1.lastAt - burst1.start) / 1000), 0, cpu1);
  add(w1, 'ms until the publisher handed over the burst', burst1.sentAt - burst1.start, 0, cpu1);
  add(
    w1,
    `deliveries missing after ${cfg.BENCH_PEERS_DRAIN_SECONDS}s (of ${expected1})`,
    expected1 - t1.received,
    0,
    cpu1,
  );
  add(w1, 'p99 ms publish → client', percentile(t1.histogram, 99), 0, cpu1);
  add(w5, 'peak RSS MB during the burst', peak, 0, cpu1);
  await closeAll();
  if (cfg.burstOnly) {
    for (const w of [...clients, publisher]) await w.kill();
    await server.stop();
    return;
  }
  await reset();
  await sleep(1000);

  // Workloads 2 and 3: M clients x K channels each over C channels.
  const { BENCH_PEERS_CLIENTS: M, BENCH_PEERS_CHANNELS_PER_CLIENT: K, BENCH_PEERS_CHANNELS: C } = cfg;
  await open(M);
  await subscribe(K, C);
  await sleep(1000);
  const w2 = `${C} channels, ${M} clients x ${K}, ${cfg.BENCH_PEERS_BURST_EVENTS}-event burst`;
  const expected2 = expectedDeliveries(cfg.BENCH_PEERS_BURST_EVENTS, M, K, C);
  cpu = meter();
  const burst2 = await publisher.call<Burst>('burst', {
    count: cfg.BENCH_PEERS_BURST_EVENTS,
    channelCount: C,
  });
  const t2 = await drain(clients, expected2);
  const cpu2 = cpu();
  add(w2, 'deliveries/s', t2.received / ((t2.lastAt - burst2.start) / 1000), 0, cpu2);
  add(w2, 'ms until the publisher handed over the burst', burst2.sentAt - burst2.start, 0, cpu2);
  add(
    w2,
    `deliveries missing after ${cfg.BENCH_PEERS_DRAIN_SECONDS}s (of ${expected2})`,
    expected2 - t2.received,
    0,
    cpu2,
  );
  // The same burst handed over in full while the server is paused (SIGSTOP), timed from its resume:
  // the server draining it alone, not sharing the two cores with the publisher (Ripple's Kafka
  // producer needs several times the CPU of Socket.IO's emitter for the same burst, which a real
  // deployment spends on another machine). Every peer's input waits meanwhile where its transport
  // keeps it: Kafka, Redis Pub/Sub's output buffer, the server socket's receive buffer.
  await reset();
  await sleep(1000);
  cpu = meter();
  const resumed = await paused(server.pid, () =>
    publisher.call<Burst>('burst', { count: cfg.BENCH_PEERS_BURST_EVENTS, channelCount: C }),
  );
  const t2b = await drain(clients, expected2);
  const cpu2b = cpu();
  add(
    w2,
    'deliveries/s from the resume (burst handed over while paused)',
    t2b.received / ((t2b.lastAt - resumed) / 1000),
    0,
    cpu2b,
  );
  add(
    w2,
    `deliveries missing after ${cfg.BENCH_PEERS_DRAIN_SECONDS}s (of ${expected2}), burst handed over while paused`,
    expected2 - t2b.received,
    0,
    cpu2b,
  );
  await reset();
  await sleep(1000);
  const w3 = `same, ${cfg.BENCH_PEERS_RATE} events/s for ${cfg.BENCH_PEERS_SECONDS}s`;
  const events3 = cfg.BENCH_PEERS_RATE * cfg.BENCH_PEERS_SECONDS;
  const expected3 = expectedDeliveries(events3, M, K, C);
  cpu = meter();
  await publisher.call('rate', { rate: cfg.BENCH_PEERS_RATE, seconds: cfg.BENCH_PEERS_SECONDS, channelCount: C });
  const t3 = await drain(clients, expected3);
  const cpu3 = cpu();
  add(w3, 'p50 ms publish → client', percentile(t3.histogram, 50), 0, cpu3);
  add(w3, 'p99 ms publish → client', percentile(t3.histogram, 99), 0, cpu3);
  add(w3, 'max ms publish → client', t3.histogram.at(-1)?.[0] ?? Number.NaN, 0, cpu3);
  add(
    w3,
    `deliveries missing after ${cfg.BENCH_PEERS_DRAIN_SECONDS}s (of ${expected3})`,
    expected3 - t3.received,
    0,
    cpu3,
  );
  await closeAll();

  for (const w of [...clients, publisher]) await w.kill();
  await server.stop();
}

/** The bare kafkajs consumer (kafkajs-alone.ts) on the same bursts as the peers. */
async function benchKafkajs(): Promise<void> {
  const publisher = fork('publisher', {
    KAFKA_BROKERS: testInfra.kafkaBrokers.join(','),
    KAFKA_TOPIC_PREFIX: topicPrefix,
  });
  await publisher.call('connect', { peer: 'ripple', port: 0 });
  const consumer = await startBareConsumer(kafka, topicPrefix + Topics.post, bareGroup);
  stoppers.add(() => consumer.stop());
  for (let i = 0; i < 120 && consumer.received === 0; i++) {
    await publisher.call('burst', { count: 1, channelCount: 1, prefix: 'warm' });
    await sleep(500);
  }
  if (consumer.received === 0) throw new Error('kafkajs: the warm-up event never arrived');
  await sleep(1000);
  const self = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  /**
   * Has the publisher send `count` events (`publish`), waits (bounded) until the consumer read
   * them, and returns the phase's CPU column: this process (the consumer), the publisher, Kafka
   * and Redis, no clients.
   */
  const phase = async (count: number, publish: () => Promise<unknown>): Promise<string> => {
    consumer.reset();
    const me = self();
    const cpu = cpuMeter({ publisher: publisher.pid, clients: [] });
    await publish();
    const end = Date.now() + cfg.BENCH_PEERS_DRAIN_SECONDS * 1000;
    while (consumer.received < count && Date.now() < end) await sleep(5);
    const [, ...rest] = cpu().split('/');
    return [(self() - me).toFixed(1), ...rest.slice(0, 3), '-'].join('/');
  };
  for (const [workload, count] of [
    [
      `1 channel x ${cfg.BENCH_PEERS_SUBSCRIBERS}, ${cfg.BENCH_PEERS_FANOUT_EVENTS}-event burst`,
      cfg.BENCH_PEERS_FANOUT_EVENTS,
    ],
    [
      `${cfg.BENCH_PEERS_CHANNELS} channels, ${cfg.BENCH_PEERS_CLIENTS} clients x ${cfg.BENCH_PEERS_CHANNELS_PER_CLIENT}, ${cfg.BENCH_PEERS_BURST_EVENTS}-event burst`,
      cfg.BENCH_PEERS_BURST_EVENTS,
    ],
  ] as const) {
    let start = 0;
    const cpu = await phase(count, async () => {
      ({ start } = await publisher.call<Burst>('burst', { count, channelCount: cfg.BENCH_PEERS_CHANNELS }));
    });
    figures.push({
      workload,
      figure: 'events/s consumed (Kafka alone)',
      subject: 'kafkajs',
      value: consumer.received / ((consumer.lastAt - start) / 1000),
      digits: 0,
      cpu,
    });
  }
  // Workload 3's fixed rate: the floor the Kafka hop alone puts under every peer that goes through it.
  const { BENCH_PEERS_RATE: rate, BENCH_PEERS_SECONDS: seconds } = cfg;
  const cpu = await phase(rate * seconds, () => publisher.call('rate', { rate, seconds, channelCount: 1 }));
  const hist = consumer.histogram();
  for (const [figure, value] of [
    ['p50 ms publish → consumed (Kafka alone)', percentile(hist, 50)],
    ['p99 ms publish → consumed (Kafka alone)', percentile(hist, 99)],
    ['max ms publish → consumed (Kafka alone)', hist.at(-1)?.[0] ?? Number.NaN],
  ] as const) {
    figures.push({
      workload: `same, ${rate} events/s for ${seconds}s`,
      figure,
      subject: 'kafkajs',
      value,
      digits: 0,
      cpu,
    });
  }
  await consumer.stop();
  await publisher.kill();
}

const started = Date.now();
// Other work on the machine shows up in every figure: the load average is printed with the table.
const loadAtStart = loadavg()[0] ?? Number.NaN;
console.error(`[bench:peers] run=${run}`);
// withCleanup: a failure, Ctrl-C, SIGTERM or SIGHUP still stops every process and removes the run's
// topics, consumer groups and Redis keys.
const failed = await withCleanup(`bench:peers run ${run}`, async ({ defer }) => {
  defer(async () => {
    const redis = new Redis(testInfra.redisUrl);
    try {
      await deleteKeys(redis, `${redisPrefix}*`);
    } finally {
      redis.disconnect();
    }
  });
  // A killed member holds its group until its session times out: deleteGroups retries meanwhile.
  defer(() => deleteGroups(kafka, (g) => g.startsWith(`benchpeers.${run}.`)));
  defer(() => {
    const topics = Object.values(Topics).map((t) => topicPrefix + t);
    return deleteTopics(kafka, [...topics, ...topics.map(dlqTopicOf)]);
  });
  defer(() => cleanupAll(...stoppers));
  try {
    for (const peer of cfg.peers) {
      console.error(`[bench:peers] ${peer}…`);
      await benchPeer(peer);
      if (peer === 'ripple' && !cfg.connectOnly && !cfg.burstOnly) {
        console.error('[bench:peers] bare kafkajs consumer…');
        await benchKafkajs();
      }
    }
    return false;
  } catch (err) {
    // The table still prints what was measured, marked incomplete.
    console.error('[bench:peers] failed:', err);
    return true;
  }
}).catch((err: unknown) => {
  // What was measured still prints; the clean-up's failure is above it.
  console.error('[bench:peers] clean-up failed:', err);
  return true;
});
process.stdout.write(
  `\nbench:peers — ${new Date().toISOString()}, ${((Date.now() - started) / 1000).toFixed(0)} s, Node ${process.version}, ` +
    `${cpus().length} cores shared by every process, 1-min load average ${loadAtStart.toFixed(1)} at start and ` +
    `${(loadavg()[0] ?? Number.NaN).toFixed(1)} at end. Payloads 100 bytes. Clients: bare \`ws\` in separate processes (Socket.IO: ` +
    `Engine.IO v4 / Socket.IO v5 packets spoken over bare ws, not socket.io-client). CPU s is each process's ` +
    `user+system time during the phase that produced the figure.${failed ? ' INCOMPLETE: the run failed (above).' : ''}` +
    `\n\n${renderTable(figures)}\n`,
);
process.exit(failed ? 1 : 0);
