#!/usr/bin/env node
// Gateway benchmark (not a test): `pnpm bench:gateway`. One real gateway process on real Kafka and
// Redis; clients in this process. Prints one table:
//  - fanout: 1 channel x N subscribers, and N channels x 1 subscriber (deliveries/s, burst): the
//    burst is produced while the gateway is paused, then timed from its resume to the last delivery;
//  - latency: Kafka produce -> client receive at a fixed publish rate (p50/p99/max), each event
//    stamped with its *scheduled* send time;
//  - memory: gateway RSS per idle authenticated connection.
// Beside each figure: CPU seconds of the gateway, of Kafka, of Redis and of this process.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import type { JwtSecret } from '@ripple/auth';
import { createEvent, toOutboxMessage } from '@ripple/events';
import { createEventProducer, createKafka } from '@ripple/kafka';
import type { EventProducer } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cpuOf, cpuProfileArgs, registryCompleteIn, testInfra, waitUntil } from '@ripple/testing';
import { kafkaPid, percentiles } from './bench-util.js';
import { runScoped } from './harness.js';
import type { RunningService } from './harness.js';

const FANOUT_SUBSCRIBERS = Number(process.env.BENCH_FANOUT_SUBSCRIBERS ?? 2000);
const FANOUT_EVENTS = Number(process.env.BENCH_FANOUT_EVENTS ?? 50);
const LATENCY_RATE = Number(process.env.BENCH_LATENCY_RATE ?? 200);
const LATENCY_SECONDS = Number(process.env.BENCH_LATENCY_SECONDS ?? 10);
const LATENCY_SUBSCRIBERS = Number(process.env.BENCH_LATENCY_SUBSCRIBERS ?? 100);
const IDLE_CONNECTIONS = Number(process.env.BENCH_IDLE_CONNECTIONS ?? 10_000);
const PHASES = ['fanout', 'channels', 'latency', 'idle'] as const;
/** `BENCH_GATEWAY_ONLY=channels,idle`: run only these phases (default: all). */
const only = new Set((process.env.BENCH_GATEWAY_ONLY ?? PHASES.join(',')).split(',').map((p) => p.trim()));
for (const p of only)
  if (!(PHASES as readonly string[]).includes(p))
    throw new Error(`BENCH_GATEWAY_ONLY: unknown phase '${p}' (known: ${PHASES.join(', ')})`);
/** A directory: the gateway writes a V8 CPU profile there (`--cpu-prof`) when the benchmark ends. */
const CPU_PROF_DIR = process.env.BENCH_GATEWAY_CPU_PROF;
/** Node options for the gateway process only (`--max-semi-space-size=16`, to compare V8 settings). */
const GATEWAY_NODE_OPTIONS = process.env.BENCH_GATEWAY_NODE_OPTIONS;

function rssMb(pid: number | undefined): number {
  const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid ?? 0}/status`, 'utf8'))?.[1]);
  return kb / 1024;
}
const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

interface Row {
  scenario: string;
  figure: string;
  p50: string;
  p99: string;
  cpu: string;
  rss: string;
}

/** What every phase uses: the gateway, a producer, a Redis connection for figures, the run's names. */
interface Bench {
  readonly gateway: RunningService;
  readonly producer: EventProducer;
  /** Redis' own CPU counters (the shared server: other users' work counts too, as for Kafka). */
  readonly statsRedis: Redis;
  readonly secret: JwtSecret;
  readonly topicPrefix: string;
  readonly redisPrefix: string;
}

const kPid = kafkaPid();
const redisCpu = async (b: Bench): Promise<number> => {
  const info = await b.statsRedis.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1]);
  return field('used_cpu_user') + field('used_cpu_sys');
};

/**
 * Waits until the gateway's registry is complete (one lease after its first heartbeat, 15 s with
 * the default REGISTRY_HEARTBEAT_MS): until then it routes every batch to every node through Redis
 * Pub/Sub, itself included, which is what a fresh registry costs once, not the steady state.
 */
async function steadyRegistry(b: Bench): Promise<void> {
  await waitUntil(
    'a complete registry',
    60_000,
    async () => (await registryCompleteIn(b.statsRedis, b.redisPrefix, 15_000)) === 0,
  );
}

async function measure<T>(b: Bench, fn: () => Promise<T>): Promise<{ result: T; cpu: string }> {
  const gwPid = b.gateway.process.pid;
  const before = { gw: cpuOf(gwPid), k: cpuOf(kPid), r: await redisCpu(b), me: selfCpu() };
  const result = await fn();
  const spent = [
    cpuOf(gwPid) - before.gw,
    cpuOf(kPid) - before.k,
    (await redisCpu(b)) - before.r,
    selfCpu() - before.me,
  ];
  const cpu = spent.map((s) => s.toFixed(2)).join('/');
  return { result, cpu };
}

interface Client {
  socket: WebSocket;
  received: number;
  latencies: number[];
  /** When each event arrived (ms, Date.now()). */
  arrivals: number[];
}

async function openClients(b: Bench, count: number, channelOf: (i: number) => string | undefined): Promise<Client[]> {
  const token = await signAccessToken(b.secret, 'bench-reader', { ttlSeconds: 3600 });
  const clients: Client[] = [];
  for (let i = 0; i < count; i += 200) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(200, count - i) }, (_, k) => {
        const client: Client = {
          socket: new WebSocket(`ws://127.0.0.1:${b.gateway.port}/ws?access_token=${token}`),
          received: 0,
          latencies: [],
          arrivals: [],
        };
        const channel = channelOf(i + k);
        return new Promise<Client>((resolve, reject) => {
          client.socket.on('error', reject);
          client.socket.on('message', (data: Buffer) => {
            const text = data.toString('utf8');
            if (text.startsWith('{"op":"welcome"')) {
              if (channel === undefined) resolve(client);
              else client.socket.send(JSON.stringify({ op: 'subscribe', channel }));
              return;
            }
            if (text.startsWith('{"op":"ack"')) {
              resolve(client);
              return;
            }
            if (!text.startsWith('{"op":"event"')) return;
            client.received += 1;
            client.arrivals.push(Date.now());
            const sent = /"body":"t(\d+)"/.exec(text)?.[1];
            if (sent !== undefined) client.latencies.push(Date.now() - Number(sent));
          });
        });
      }),
    );
    clients.push(...batch);
  }
  return clients;
}

function closeAll(clients: Client[]): void {
  for (const c of clients) c.socket.terminate();
}

/**
 * A burst as the gateway sees it: the gateway is paused (SIGSTOP) while the whole burst is
 * produced, so what is measured is the gateway draining it, not the benchmark's producer. Returns
 * the seconds from the resume to the last delivery, and each delivery's time since the resume.
 */
async function burst(
  b: Bench,
  clients: Client[],
  produce: () => Promise<void>,
  perClient: number,
): Promise<{ seconds: number; sinceResume: number[] }> {
  await steadyRegistry(b);
  process.kill(b.gateway.process.pid ?? 0, 'SIGSTOP');
  try {
    await produce();
  } finally {
    process.kill(b.gateway.process.pid ?? 0, 'SIGCONT');
  }
  const resumed = Date.now();
  await waitUntil('every delivery', 120_000, () => clients.every((c) => c.received >= perClient));
  const sinceResume = clients.flatMap((c) => c.arrivals.map((t) => t - resumed));
  return { seconds: Math.max(...sinceResume) / 1000, sinceResume };
}

async function publish(
  b: Bench,
  authors: (i: number) => string,
  count: number,
  stamp: (i: number) => number = () => Date.now(),
): Promise<void> {
  const messages = Array.from({ length: count }, (_, i) => {
    const m = toOutboxMessage(
      createEvent('post.created', {
        source: 'bench',
        data: {
          postId: randomBytes(6).toString('hex'),
          authorId: authors(i),
          body: `t${stamp(i)}`,
          createdAt: new Date().toISOString(),
        },
      }),
    );
    return { ...m, topic: b.topicPrefix + m.topic };
  });
  for (let i = 0; i < messages.length; i += 500) await b.producer.send(messages.slice(i, i + 500));
}

// runScoped: a failure, Ctrl-C, SIGTERM or SIGHUP still stops the gateway and removes the run's
// topics, consumer group and Redis keys.
const rows = await runScoped('bg', async ({ iso, spawn, defer }) => {
  const gateway = await spawn(
    'fanout-gateway',
    {
      JWT_SECRET: iso.jwtSecretText,
      KAFKA_BROKERS: iso.env.KAFKA_BROKERS,
      KAFKA_TOPIC_PREFIX: iso.env.KAFKA_TOPIC_PREFIX,
      KAFKA_GROUP_ID: `bg.${iso.run}.gateway`,
      // The bursts (fanout, channels) pause the gateway (SIGSTOP) while they are produced: its
      // group must not evict it. Only then: a member that did not leave (stopped while it joined)
      // holds the group for as long, past the clean-up's retries (~37 s).
      ...((only.has('fanout') || only.has('channels')) && { KAFKA_SESSION_TIMEOUT_MS: '60000' }),
      REDIS_URL: iso.env.REDIS_URL,
      REDIS_KEY_PREFIX: iso.env.REDIS_KEY_PREFIX,
      WS_SEND_BUFFER_BYTES: String(8 * 1024 * 1024),
      DRAIN_WINDOW_MS: '0',
      ...(GATEWAY_NODE_OPTIONS !== undefined && { NODE_OPTIONS: GATEWAY_NODE_OPTIONS }),
    },
    60_000,
    // A profiled gateway writes its profile on a clean exit: runScoped stops it with SIGTERM.
    cpuProfileArgs(CPU_PROF_DIR),
  );
  process.stdout.write(`bench-gateway: run=${iso.run}\n`);
  const kafka = createKafka({
    brokers: testInfra.kafkaBrokers,
    clientId: 'bench',
    logger: createLogger('bench', 'silent'),
  });
  const b: Bench = {
    gateway,
    producer: createEventProducer(kafka),
    statsRedis: new Redis(testInfra.redisUrl),
    secret: jwtSecret(iso.jwtSecretText),
    topicPrefix: iso.env.KAFKA_TOPIC_PREFIX,
    redisPrefix: iso.env.REDIS_KEY_PREFIX,
  };
  defer(() => b.statsRedis.disconnect());
  defer(() => b.producer.disconnect());
  await b.producer.connect();
  const gwPid = gateway.process.pid;
  const rows: Row[] = [];
  // 1 channel x N subscribers.
  if (only.has('fanout')) {
    const clients = await openClients(b, FANOUT_SUBSCRIBERS, () => 'creator:hot');
    const { result, cpu } = await measure(b, () =>
      burst(b, clients, () => publish(b, () => 'hot', FANOUT_EVENTS), FANOUT_EVENTS),
    );
    const { seconds } = result;
    const lat = percentiles(result.sinceResume);
    rows.push({
      scenario: `fanout 1 channel x ${FANOUT_SUBSCRIBERS} subscribers, ${FANOUT_EVENTS} events`,
      figure: `${Math.round((FANOUT_SUBSCRIBERS * FANOUT_EVENTS) / seconds)} deliveries/s`,
      ...lat,
      cpu,
      rss: rssMb(gwPid).toFixed(0),
    });
    closeAll(clients);
  }
  // N channels x 1 subscriber.
  if (only.has('channels')) {
    const clients = await openClients(b, FANOUT_SUBSCRIBERS, (i) => `creator:c${i}`);
    const { result, cpu } = await measure(b, () =>
      burst(b, clients, () => publish(b, (i) => `c${i % FANOUT_SUBSCRIBERS}`, FANOUT_SUBSCRIBERS * 5), 5),
    );
    const { seconds } = result;
    const lat = percentiles(result.sinceResume);
    rows.push({
      scenario: `fanout ${FANOUT_SUBSCRIBERS} channels x 1 subscriber, 5 events each`,
      figure: `${Math.round((FANOUT_SUBSCRIBERS * 5) / seconds)} deliveries/s`,
      ...lat,
      cpu,
      rss: rssMb(gwPid).toFixed(0),
    });
    closeAll(clients);
  }
  // Fixed rate: produce -> receive latency.
  if (only.has('latency')) {
    const clients = await openClients(b, LATENCY_SUBSCRIBERS, () => 'creator:steady');
    const total = LATENCY_RATE * LATENCY_SECONDS;
    const { cpu } = await measure(b, async () => {
      const tickMs = 20;
      const perTick = Math.max(1, Math.round((LATENCY_RATE * tickMs) / 1000));
      const start = Date.now();
      for (let sent = 0, t = 0; sent < total; t++) {
        const due = start + t * tickMs;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        const n = Math.min(perTick, total - sent);
        await publish(
          b,
          () => 'steady',
          n,
          () => due,
        );
        sent += n;
      }
      await waitUntil('every delivery', 120_000, () => clients.every((c) => c.received >= total));
    });
    const all = clients.flatMap((c) => c.latencies);
    const lat = percentiles(all);
    rows.push({
      scenario: `latency ${LATENCY_RATE} events/s for ${LATENCY_SECONDS}s to ${LATENCY_SUBSCRIBERS} subscribers`,
      figure: `max ${all.reduce((m, v) => Math.max(m, v), 0)} ms`,
      ...lat,
      cpu,
      rss: rssMb(gwPid).toFixed(0),
    });
    closeAll(clients);
  }
  // Idle connections.
  if (only.has('idle')) {
    await new Promise((r) => setTimeout(r, 2000));
    const before = rssMb(gwPid);
    const opened = Date.now();
    const { result: clients, cpu } = await measure(b, () => openClients(b, IDLE_CONNECTIONS, () => undefined));
    const connectsPerSecond = Math.round(IDLE_CONNECTIONS / ((Date.now() - opened) / 1000));
    await new Promise((r) => setTimeout(r, 3000));
    const after = rssMb(gwPid);
    rows.push({
      scenario: `${IDLE_CONNECTIONS} idle authenticated connections`,
      figure: `${(((after - before) * 1024) / IDLE_CONNECTIONS).toFixed(1)} KiB RSS per connection, ${connectsPerSecond} connects/s`,
      p50: '-',
      p99: '-',
      cpu,
      rss: after.toFixed(0),
    });
    closeAll(clients);
  }
  return rows;
});

const header = ['scenario', 'result', 'p50 ms', 'p99 ms', 'CPU s gateway/kafka/redis/clients', 'gateway RSS MB'];
const lines = rows.map((r) => [r.scenario, r.figure, r.p50, r.p99, r.cpu, r.rss]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]?.length ?? 0)));
const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
process.stdout.write(`\nFanout gateway, one node (2 cores shared by gateway, Kafka, Redis and clients)\n`);
process.stdout.write(`${[fmt(header), fmt(widths.map((w) => '-'.repeat(w))), ...lines.map(fmt)].join('\n')}\n`);
process.exit(0);
