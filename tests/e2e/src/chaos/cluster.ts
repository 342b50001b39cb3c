import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { createKafka } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { freePort, privateKafka, waitFor, waitUntil } from '@ripple/testing';
import type { PrivateKafka } from '@ripple/testing';
import type { RunningService, spawnService, isolatedRun } from '../harness.js';
import { startLoadBalancer } from './balancer.js';
import type { LoadBalancer } from './balancer.js';
import type { Ledger } from './ledger.js';
import type { WhereaboutsProbe } from './diagnosis.js';
import { privatePostgres } from './postgres.js';
import type { PrivatePostgres } from './postgres.js';
import { clusterWhereabouts } from './whereabouts.js';

/** A redis-server of the chaos run's own (no persistence), which it may kill and restart empty. */
export interface PrivateRedis {
  readonly url: string;
  readonly pid: number | undefined;
  /** SIGKILLs it and starts it again on the same port, empty; resolves once it answers. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `redis-server` on a free loopback port, without snapshots or an append-only file. */
export async function privateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  let child: ChildProcess;
  const start = async (): Promise<void> => {
    child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--maxmemory-policy',
        'noeviction',
      ],
      { stdio: 'ignore' },
    );
    await waitUntil('the private redis-server to answer', 10_000, () => portAnswers(port));
  };
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    get pid() {
      return child.pid;
    },
    restart: async () => {
      await stop();
      await start();
    },
    stop,
  };
}

function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}

/** Peak resident set size (VmHWM) of a process, in bytes; undefined when it is gone. */
export function peakRssOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** The first child of process `pid` (from /proc), or undefined. */
function childOf(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const first = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0];
    return first ? Number(first) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Gateway settings of a chaos run: quick heartbeats and drains, so that faults show quickly. The
 * drain window is `CHAOS_DRAIN_WINDOW_MS` (default 1000 ms; the product's default is 10,000): a
 * draining node tells its clients to reconnect spread over it.
 */
export const CHAOS_GATEWAY_ENV = {
  KAFKA_TOPIC_PARTITIONS: '6',
  REGISTRY_HEARTBEAT_MS: '500',
  DRAIN_WINDOW_MS: process.env.CHAOS_DRAIN_WINDOW_MS ?? '1000',
  WS_PING_INTERVAL_MS: '3000',
  WS_SEND_BUFFER_BYTES: '262144',
} as const;

/**
 * The platform under chaos: a private Kafka broker, Redis and PostgreSQL cluster, post-service, `gateways` gateway nodes and a TCP proxy that spreads new
 * connections over the nodes that are up (the load balancer).
 */
export interface Cluster {
  readonly kafka: PrivateKafka;
  readonly redis: PrivateRedis;
  readonly postgres: PrivatePostgres;
  readonly postService: RunningService;
  /** Gateway nodes by slot; a slot's node is replaced by `restartGateway`/`killGateway`. */
  readonly gateways: RunningService[];
  /** The load balancer (a TCP proxy in its own process) that clients connect to. */
  readonly proxy: LoadBalancer;
  /** An access token for `user`. */
  token(user: string): Promise<string>;
  /** Stops slot `slot`'s node with SIGTERM (it drains), waits for its exit, starts a new one. */
  restartGateway(slot: number): Promise<void>;
  /** SIGKILLs slot `slot`'s node, then starts a new one after `downMs`. */
  killGateway(slot: number, downMs: number): Promise<void>;
  /** Reads where accepted events got to (outbox, Kafka, channel history), to explain a missing delivery. */
  readonly whereabouts: WhereaboutsProbe;
  /** Records every process's peak memory in `ledger`. */
  sampleMemory(ledger: Ledger): void;
  /** The process ids of the cluster's processes now, by name (`gw0`… by slot), and the driver's. */
  pids(): Record<string, number | undefined>;
  stop(): Promise<void>;
}

type Scope = {
  iso: ReturnType<typeof isolatedRun>;
  spawn: (...args: Parameters<typeof spawnService>) => Promise<RunningService>;
};

/** Starts the cluster inside a `runScoped` scope (which stops the processes it spawned). */
export async function startCluster(scope: Scope, gatewayCount = 3): Promise<Cluster> {
  const { iso } = scope;
  const kafka = await privateKafka();
  let redis: PrivateRedis | undefined;
  let postgres: PrivatePostgres | undefined;
  try {
    // Started together (each takes seconds here); whatever started is stopped if another failed.
    const started = await Promise.allSettled([privateRedis(), privatePostgres(), kafka.start()]);
    if (started[0].status === 'fulfilled') redis = started[0].value;
    if (started[1].status === 'fulfilled') postgres = started[1].value;
    for (const result of started) if (result.status === 'rejected') throw result.reason;
    if (!redis || !postgres) throw new Error('unreachable: redis and postgres started');
    const env = { ...iso.env, KAFKA_BROKERS: kafka.brokers, REDIS_URL: redis.url, KAFKA_TOPIC_PARTITIONS: '6' };
    const groupId = `chaos.${iso.run}`;
    const gatewayEnv = { ...env, ...CHAOS_GATEWAY_ENV, KAFKA_GROUP_ID: groupId };
    const databaseUrl = postgres.url(`chaos_${iso.run}_post_service`);
    let generation = 0;
    // The harness's start deadline does not count the time a process waited for a CPU: one
    // gateway took 48 s to start alone at load 36 (two cores shared with other work), and
    // post-service did not start within 60 s of wall time at load 40.
    const spawnGateway = (slot: number) =>
      scope.spawn('fanout-gateway', { ...gatewayEnv, NODE_ID: `gw${slot}-${generation++}-${iso.run}` });
    const [postService, ...gateways] = await Promise.all([
      scope.spawn('post-service', {
        ...env,
        DATABASE_URL: databaseUrl,
        RATE_LIMIT_MAX: '1000000',
        OUTBOX_POLL_INTERVAL_MS: '200',
      }),
      ...Array.from({ length: gatewayCount }, (_, slot) => spawnGateway(slot)),
    ]);
    if (!postService) throw new Error('post-service did not start');
    const up = new Set(gateways.map((_, slot) => slot));
    const proxy = await startLoadBalancer();
    // New connections go to the nodes that are up; taken out before a node is stopped.
    const balance = (): Promise<void> =>
      proxy.setTargets([...up].flatMap((slot) => gateways[slot]?.port ?? []).sort((a, b) => a - b));
    await balance();
    const secret = jwtSecret(iso.jwtSecretText);
    const tokens = new Map<string, Promise<string>>();
    const peaks = new Map<string, number>();
    const notePeak = (name: string, pid: number | undefined): void => {
      const bytes = peakRssOf(pid);
      if (bytes !== undefined) peaks.set(name, Math.max(bytes, peaks.get(name) ?? 0));
    };
    const replace = async (slot: number, signal: NodeJS.Signals, downMs: number): Promise<void> => {
      const node = gateways[slot];
      if (!node) throw new Error(`no gateway in slot ${slot}`);
      notePeak('gateway', node.process.pid);
      up.delete(slot);
      await balance();
      await node.stop(signal);
      if (downMs > 0) await new Promise((r) => setTimeout(r, downMs));
      gateways[slot] = await spawnGateway(slot);
      up.add(slot);
      await balance();
    };
    const redisOf = redis;
    const postgresOf = postgres;
    return {
      kafka,
      redis,
      postgres,
      postService,
      gateways,
      proxy,
      // One token per user for the whole run (an hour's validity), as a real client keeps its
      // token: signing on every reconnect queued behind the starved thread pool (seconds at load 22).
      token: (user) => {
        let token = tokens.get(user);
        if (!token) tokens.set(user, (token = signAccessToken(secret, user)));
        return token;
      },
      whereabouts: clusterWhereabouts({
        databaseUrl,
        kafka: createKafka({
          brokers: [kafka.brokers],
          clientId: 'chaos-whereabouts',
          logger: createLogger('chaos', 'silent'),
        }),
        topicPrefix: iso.env.KAFKA_TOPIC_PREFIX,
        groupId,
        redisUrl: redisOf.url,
        redisPrefix: iso.env.REDIS_KEY_PREFIX,
      }),
      restartGateway: (slot) => replace(slot, 'SIGTERM', 0),
      killGateway: (slot, downMs) => replace(slot, 'SIGKILL', downMs),
      sampleMemory(ledger) {
        for (const node of gateways) notePeak('gateway', node.process.pid);
        notePeak('post-service', postService.process.pid);
        notePeak('redis', redisOf.pid);
        notePeak('postgres', postgresOf.pid);
        notePeak('kafka', childOf(kafka.pid()) ?? kafka.pid()); // kafka.sh's bash runs java as its child
        notePeak('driver', process.pid);
        notePeak('balancer', proxy.pid);
        for (const [name, bytes] of peaks) ledger.rss(name, bytes);
        peaks.clear();
      },
      pids: () => ({
        driver: process.pid,
        balancer: proxy.pid,
        ...Object.fromEntries(gateways.map((g, slot) => [`gw${slot}`, g.process.pid])),
        post: postService.process.pid,
        redis: redisOf.pid,
        postgres: postgresOf.pid,
        kafka: childOf(kafka.pid()) ?? kafka.pid(),
      }),
      stop: async () => {
        await proxy.close();
        await redisOf.stop();
        await postgresOf.stop();
        kafka.remove();
      },
    };
  } catch (err) {
    await redis?.stop();
    await postgres?.stop();
    kafka.remove();
    throw err;
  }
}

/** Waits until every gateway in the cluster answers `/readyz` (after a Kafka or Redis restart). */
export async function waitReady(cluster: Cluster, deadlineMs = 60_000): Promise<void> {
  await waitFor('every gateway to be ready', deadlineMs, async () => {
    const answers = await Promise.all(
      cluster.gateways.map((g) =>
        fetch(`${g.url}/readyz`).then(
          (r) => r.ok,
          () => false,
        ),
      ),
    );
    return answers.every(Boolean) ? true : undefined;
  });
}
