#!/usr/bin/env node
// Live-feed benchmark (not a test): `pnpm bench:feed`. A creator with BENCH_FEED_FOLLOWERS
// followers (rows written straight into post-service's database), BENCH_FEED_CONNECTED of them
// connected with `feed:<id>` subscribed, spread over BENCH_FEED_GATEWAYS gateway processes, posts
// BENCH_FEED_POSTS times over HTTP, one post after the previous one reached everyone, after one
// warm-up post that is printed but not counted. Prints (and each post's first/p50/last arrival):
//  - POST -> feed frame at every connected follower (ms, p50/p99/max over all deliveries), and the
//    time until the last follower had each post (p50/max over posts);
//  - Redis commands per post, by command, counted with MONITOR on this run's key prefix, without
//    the registry heartbeats' (see `RedisTally`), and the cross-node messages per post;
//  - CPU seconds of the gateways, post-service and this process over the posting phase.
// The full size of issue 13: BENCH_FEED_FOLLOWERS=100000 BENCH_FEED_CONNECTED=10000 (defaults).
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import pg from 'pg';
import { WebSocket } from 'ws';
import { jwtSecret, signAccessToken } from '@ripple/auth';
import { cpuOf, cpuProfileArgs, registryCompleteIn, testInfra, waitUntil } from '@ripple/testing';
import { percentiles } from './bench-util.js';
import { runScoped } from './harness.js';
import type { RunningService } from './harness.js';

const FOLLOWERS = Number(process.env.BENCH_FEED_FOLLOWERS ?? 100_000);
const CONNECTED = Number(process.env.BENCH_FEED_CONNECTED ?? 10_000);
const POSTS = Number(process.env.BENCH_FEED_POSTS ?? 10);
const GATEWAYS = Number(process.env.BENCH_FEED_GATEWAYS ?? 2);
/** Feed subscriptions being set up at once. */
const CONNECT_WINDOW = Number(process.env.BENCH_FEED_CONNECT_WINDOW ?? 250);
/** A directory: the gateways write V8 CPU profiles there (`--cpu-prof`) when they stop. */
const CPU_PROF_DIR = process.env.BENCH_FEED_CPU_PROF;
if (CONNECTED > FOLLOWERS) throw new Error('BENCH_FEED_CONNECTED must not exceed BENCH_FEED_FOLLOWERS');
/** The gateways' registry heartbeat (their default): a lease is three, the registry complete one lease after the first. */
const HEARTBEAT_MS = 5000;

const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

const ms = (seconds: number) => (seconds * 1000).toFixed(1);

/** Mean of a Prometheus histogram at `baseUrl`/metrics (seconds), over series whose labels contain `labels`. */
async function meanSeconds(baseUrl: string, name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  let sum = 0;
  let count = 0;
  for (const line of text.split('\n')) {
    if (!line.includes(labels)) continue;
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (line.startsWith(`${name}_sum`)) sum += value;
    else if (line.startsWith(`${name}_count`)) count += value;
  }
  return count === 0 ? Number.NaN : sum / count;
}

/**
 * Counts a run's Redis commands from MONITOR (those with an argument under `keyPrefix`, as the
 * commands a script runs show too), by command, while `counting`, without the registry's
 * heartbeat and lease work: what the gateways run while `learning` (idle gateways run nothing
 * else in Redis: directory and roster renewals, the reaper's sweep) is left out later too, by
 * script (EVALSHA's SHA, EVAL's text) or by command and key shape, the commands a script runs
 * with their script. Also counts PUBLISH to the gateways' node bus: to one node, or broadcast to
 * every node (its sender included).
 */
class RedisTally {
  mode: 'idle' | 'learning' | 'counting' = 'idle';
  readonly commands = new Map<string, number>();
  leftOut = 0;
  toOneNode = 0;
  broadcasts = 0;
  private readonly heartbeat = new Set<string>();
  /** Whether the script whose commands MONITOR shows now is heartbeat work (a line of its own precedes them). */
  private inHeartbeat = false;
  constructor(private readonly keyPrefix: string) {}

  /** One MONITOR line: its arguments and its source (`lua` for a command a script runs). */
  see(args: readonly string[], source: string): void {
    const name = (args[0] ?? '?').toLowerCase();
    if (source !== 'lua') {
      const signature = this.signature(name, args);
      if (this.mode === 'learning' && args.some((a) => a.includes(this.keyPrefix))) this.heartbeat.add(signature);
      this.inHeartbeat = this.heartbeat.has(signature);
    }
    if (this.mode !== 'counting' || !args.some((a) => a.includes(this.keyPrefix))) return;
    if (this.inHeartbeat) {
      this.leftOut++;
      return;
    }
    this.commands.set(name, (this.commands.get(name) ?? 0) + 1);
    if (name === 'publish' && args[1] === `${this.keyPrefix}nodes:all`) this.broadcasts++;
    else if (name === 'publish' && args[1]?.startsWith(`${this.keyPrefix}node:`)) this.toOneNode++;
  }

  private signature(name: string, args: readonly string[]): string {
    if (name === 'evalsha' || name === 'eval') return `${name} ${args[1]}`;
    // The key's shape: without the run's prefix and the hash tag's contents (a node, a user, a channel).
    const key = (args[1] ?? '').replace(this.keyPrefix, '').replace(/\{[^}]*\}/g, '{}');
    return `${name} ${key}`;
  }
}

interface Follower {
  readonly socket: WebSocket;
  /** Arrival time (performance.now()) of each post, by body. */
  readonly arrivals: Map<string, number>;
}

await runScoped('bf', async ({ iso, spawn, defer }) => {
  const secret = jwtSecret(iso.jwtSecretText);
  const creator = `creator-${iso.run}`;
  const databaseUrl = iso.databaseUrl('post-service');
  const post = await spawn('post-service', {
    ...iso.env,
    DATABASE_URL: databaseUrl,
    RATE_LIMIT_MAX: '100000000',
    OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: '0',
    OVERLOAD_MAX_IN_FLIGHT: '0',
    // The connect phase loads 250 followee lists at once: let them queue for the pool.
    DB_POOL_TIMEOUT_MS: '30000',
  });
  const gateways: RunningService[] = [];
  for (let g = 0; g < GATEWAYS; g++) {
    gateways.push(
      await spawn(
        'fanout-gateway',
        {
          ...iso.env,
          NODE_ID: `bf${g}-${iso.run}`,
          KAFKA_GROUP_ID: `bf.${iso.run}`,
          POST_SERVICE_URL: post.url,
          FEED_LOAD_TIMEOUT_MS: '30000',
          WS_SEND_BUFFER_BYTES: String(8 * 1024 * 1024),
          // Posting waits for a complete registry (one lease after the first heartbeat); the
          // heartbeats' renewals are left out of the commands counted (RedisTally).
          REGISTRY_HEARTBEAT_MS: String(HEARTBEAT_MS),
          // The sockets are gone when the run ends: stop at once (and write the CPU profile).
          DRAIN_WINDOW_MS: '0',
        },
        60_000,
        cpuProfileArgs(CPU_PROF_DIR),
      ),
    );
  }

  // The follow graph, written directly: FOLLOWERS rows for the creator and their counts.
  const db = new pg.Client({ connectionString: databaseUrl });
  await db.connect();
  const graphStart = performance.now();
  await db.query(
    `INSERT INTO follows (id, follower_id, followee_id)
     SELECT gen_random_uuid(), 'f' || g, $1 FROM generate_series(1, $2::int) g`,
    [creator, FOLLOWERS],
  );
  await db.query(
    `INSERT INTO user_counts (user_id, follower_count, following_count)
     SELECT 'f' || g, 0, 1 FROM generate_series(1, $1::int) g
     UNION ALL SELECT $2, $1::int, 0`,
    [FOLLOWERS, creator],
  );
  await db.end();
  process.stdout.write(
    `bench-feed: run=${iso.run}; ${FOLLOWERS} follows written in ${((performance.now() - graphStart) / 1000).toFixed(1)} s\n`,
  );

  // CONNECTED followers, round-robin over the gateways, each subscribed to its feed.
  const pids = [...gateways, post].map((s) => s.process.pid);
  const followers: Follower[] = [];
  const connectCpuBefore = [...pids.map(cpuOf), selfCpu()];
  const connectStart = performance.now();
  const connect = async (n: number): Promise<Follower> => {
    const token = await signAccessToken(secret, `f${n}`, { ttlSeconds: 7200 });
    const gateway = gateways[n % gateways.length] ?? gateways[0];
    const follower: Follower = {
      socket: new WebSocket(`ws://127.0.0.1:${gateway?.port}/ws?access_token=${token}`),
      arrivals: new Map(),
    };
    return new Promise<Follower>((resolve, reject) => {
      follower.socket.on('error', reject);
      follower.socket.on('message', (data: Buffer) => {
        const text = data.toString('utf8');
        if (text.startsWith('{"op":"welcome"')) {
          follower.socket.send(JSON.stringify({ op: 'subscribe', id: 'feed', channel: `feed:f${n}` }));
        } else if (text.startsWith('{"op":"ack"') && text.includes('"id":"feed"')) {
          resolve(follower);
        } else if (text.startsWith('{"op":"error"')) {
          reject(new Error(text));
        } else if (text.startsWith(`{"op":"event","channel":"feed:`)) {
          const body = /"body":"(bench-\d+)"/.exec(text)?.[1];
          if (body !== undefined) follower.arrivals.set(body, performance.now());
        }
      });
    });
  };
  // A window of CONNECT_WINDOW set-ups in flight (not batches: a batch waits for its slowest).
  let next = 1;
  await Promise.all(
    Array.from({ length: Math.min(CONNECT_WINDOW, CONNECTED) }, async () => {
      while (next <= CONNECTED) {
        followers.push(await connect(next++));
        if (process.env.BENCH_FEED_VERBOSE && followers.length % 1000 === 0) {
          process.stdout.write(
            `  ${followers.length} at ${((performance.now() - connectStart) / 1000).toFixed(1)} s\n`,
          );
        }
      }
    }),
  );
  const connectCpu = [...pids.map(cpuOf), selfCpu()].map((c, i) => (c - (connectCpuBefore[i] ?? 0)).toFixed(1));
  // Where the set-up time went: the gateways' followee loads and post-service's answers to them.
  const loads = await Promise.all(gateways.map((g) => meanSeconds(g.url, 'gateway_feed_load_seconds', '')));
  const idsRoute = await meanSeconds(post.url, 'http_request_duration_seconds', 'route="/me/following/ids"');
  process.stdout.write(
    `bench-feed: ${CONNECTED} feeds subscribed over ${GATEWAYS} gateways in ${((performance.now() - connectStart) / 1000).toFixed(1)} s` +
      ` (CPU s gw…/post/bench ${connectCpu.join('/')}; followee load mean ${loads.map(ms).join('/')} ms at the gateways,` +
      ` GET /me/following/ids mean ${ms(idsRoute)} ms in post-service)\n`,
  );

  // Redis commands of this run (MONITOR, filtered by the run's key prefix). `monitor()` opens a
  // connection of its own: both must be closed (deferred), or the process never ends.
  const tally = new RedisTally(iso.env.REDIS_KEY_PREFIX);
  const monitorBase = new Redis(testInfra.redisUrl);
  const monitor = await monitorBase.monitor();
  defer(() => {
    monitor.disconnect();
    monitorBase.disconnect();
    return Promise.resolve();
  });
  monitor.on('monitor', (_time: string, args: string[], source: string) => tally.see(args, source));
  // The tally gives a script's commands to the script line before them: check that MONITOR shows
  // them in that order (Redis 7.0 does).
  const probe = `${iso.env.REDIS_KEY_PREFIX}bench-probe`;
  const order: string[] = [];
  const probeOrder = (_time: string, args: string[]) => {
    if (args.includes(probe)) order.push((args[0] ?? '').toLowerCase());
  };
  monitor.on('monitor', probeOrder);
  await monitorBase.eval("return redis.call('DEL', KEYS[1])", 1, probe);
  await waitUntil('the probe in MONITOR', 5_000, () => order.length >= 2);
  monitor.off('monitor', probeOrder);
  if (order.join() !== 'eval,del') throw new Error(`MONITOR shows a script after its commands (${order.join()})`);

  // Posting starts once the registry is complete (as bench:e2e): until then every routed batch goes
  // to every gateway through Redis Pub/Sub, what a fresh registry costs once, not the steady state.
  await waitUntil(
    'a complete registry',
    60_000 + 3 * HEARTBEAT_MS,
    async () => (await registryCompleteIn(monitorBase, iso.env.REDIS_KEY_PREFIX, 3 * HEARTBEAT_MS)) === 0,
  );
  // Then, for two heartbeats, with nothing else running (not even the polls above), the tally
  // learns the heartbeats' commands.
  tally.mode = 'learning';
  await new Promise((resolve) => setTimeout(resolve, 2 * HEARTBEAT_MS + 1000));
  tally.mode = 'idle';

  const token = await signAccessToken(secret, creator, { ttlSeconds: 7200 });
  /** Posts `body` and waits for it at every follower; the arrival times after the POST (ms) and who missed it. */
  const postAndWait = async (body: string): Promise<{ arrived: number[]; missed: number }> => {
    const sentAt = performance.now();
    const res = await fetch(`${post.url}/posts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ body }),
    });
    if (res.status !== 201) throw new Error(`POST /posts answered ${res.status}: ${await res.text()}`);
    await waitUntil(`${body} at every follower`, 60_000, () => followers.every((f) => f.arrivals.has(body))).catch(
      () => undefined,
    );
    const arrived: number[] = [];
    for (const f of followers) {
      const at = f.arrivals.get(body);
      if (at !== undefined) arrived.push(Math.round(at - sentAt));
    }
    const own = percentiles(arrived);
    process.stdout.write(
      `  ${body}: first ${Math.min(...arrived)} ms, p50 ${own.p50} ms, last ${Math.max(0, ...arrived)} ms\n`,
    );
    return { arrived, missed: followers.length - arrived.length };
  };
  // One post before the measured ones, printed and not counted: the first post after start-up
  // runs every process's delivery path cold (post-service's first insert and outbox send, the
  // gateways' and this client's first event frames), which a serving gateway pays once, not per post.
  const warmUp = await postAndWait('bench-0');
  if (warmUp.missed > 0) throw new Error(`the warm-up post missed ${warmUp.missed} followers`);

  tally.mode = 'counting';
  const cpuBefore = [...pids.map(cpuOf), selfCpu()];
  // On the monotonic clock V8 CPU profiles use (µs), to cut the posting phase out of a profile.
  const postingFrom = process.hrtime.bigint() / 1000n;
  const latencies: number[] = [];
  const lastArrivals: number[] = [];
  let missing = 0;
  for (let p = 1; p <= POSTS; p++) {
    const { arrived, missed } = await postAndWait(`bench-${p}`);
    latencies.push(...arrived);
    lastArrivals.push(Math.max(0, ...arrived));
    missing += missed;
  }
  process.stdout.write(
    `bench-feed: posting phase on the monotonic clock ${postingFrom}..${process.hrtime.bigint() / 1000n} µs\n`,
  );
  const cpuAfter = [...pids.map(cpuOf), selfCpu()];
  tally.mode = 'idle';
  for (const f of followers) f.socket.terminate();

  const all = percentiles(latencies);
  const lastP = percentiles(lastArrivals);
  const total = [...tally.commands.values()].reduce((a, b) => a + b, 0);
  const cpu = cpuAfter.map((c, i) => (c - (cpuBefore[i] ?? 0)).toFixed(1));
  const byCommand = [...tally.commands]
    .sort((a, b) => b[1] - a[1])
    .map(([name, count]) => `${name} ${(count / POSTS).toFixed(1)}`)
    .join(', ');
  process.stdout.write(
    [
      '',
      `| followers | connected | gateways | posts | POST -> feed p50 | p99 | max | last follower p50 | max | missing | Redis cmds/post | CPU s gw…/post/bench |`,
      `| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |`,
      `| ${FOLLOWERS} | ${CONNECTED} | ${GATEWAYS} | ${POSTS} | ${all.p50} ms | ${all.p99} ms | ${Math.max(...latencies)} ms | ${lastP.p50} ms | ${Math.max(...lastArrivals)} ms | ${missing} | ${(total / POSTS).toFixed(1)} | ${cpu.join('/')} |`,
      '',
      `Redis commands per post, by command: ${byCommand}`,
      `Left out: ${tally.leftOut} heartbeat and lease commands in the posting phase`,
      `Cross-node messages per post: ${(tally.toOneNode / POSTS).toFixed(1)} to one gateway, ` +
        `${(tally.broadcasts / POSTS).toFixed(1)} broadcast to all ${GATEWAYS} (the sender included)`,
      '',
    ].join('\n'),
  );
});
