import { after, test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { dropDatabase } from '@ripple/db';
import { createKafka, createKafkaAdmin, deleteGroups, deleteTopics } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, deleteKeys, testDatabaseUrl, testInfra, waitFor } from '@ripple/testing';
import { isolatedRun } from './harness.js';

// The shared harness (runScoped) must leave nothing behind when a script fails or is interrupted:
// checked on bench:http itself, failed on purpose and stopped with SIGINT. Test files clean up
// through cleanupAll, checked on a test file whose before() fails (failed-before.fixture.ts).
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * Spawns `script` (a path from the repository's root) with `env` on top of ours, and keeps its
 * output; `run` resolves with the run id it prints (`run=<id>`).
 */
function spawnBench(script: string, env: Record<string, string>) {
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const run = waitFor(`${script} to print its run id`, 90_000, () => /\brun=(\w+)/.exec(output)?.[1]);
  return { child, exited, run, output: () => output };
}

function runBench(env: Record<string, string>) {
  const bench = spawnBench('tests/e2e/dist/bench-http.js', {
    BENCH_HTTP_ONLY: 'post',
    BENCH_HTTP_SECONDS: '60',
    ...env,
  });
  const started = waitFor('the bench to start its services', 90_000, () => {
    const m = /bench-http: run=(\S+) pids=(\S+)/.exec(bench.output());
    return m ? { run: m[1] ?? '', pids: (m[2] ?? '').split(',').map(Number) } : undefined;
  });
  return { ...bench, started };
}

/** Whether process `pid` still runs (a zombie, ended but not yet reaped, does not). */
const alive = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
  } catch {
    return false;
  }
};

/** The processes whose parent is `pid` (from /proc). */
function childrenOf(pid: number): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        // Fields after the command's closing parenthesis: state, then the parent's pid.
        return readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.split(' ')[1] === String(pid);
      } catch {
        return false; // ended meanwhile
      }
    })
    .map(Number);
}

const kafka = createKafka({
  brokers: testInfra.kafkaBrokers,
  clientId: 'cleanup-test',
  logger: createLogger('cleanup-test', 'silent'),
});

/** What the shared infrastructure holds whose name contains `run`: databases, Redis keys, topics, consumer groups. */
async function resourcesOf(run: string) {
  const db = new pg.Client({ connectionString: testInfra.databaseUrl });
  await db.connect();
  const redis = new Redis(testInfra.redisUrl);
  const admin = createKafkaAdmin(kafka);
  await admin.connect();
  try {
    const { rows } = await db.query<{ datname: string }>(
      'SELECT datname FROM pg_database WHERE strpos(datname, $1) > 0',
      [run],
    );
    const keys: string[] = [];
    for await (const batch of redis.scanStream({ match: `*${run}*`, count: 1000 }) as AsyncIterable<string[]>)
      keys.push(...batch);
    const mine = (name: string) => name.includes(run);
    return {
      databases: rows.map((r) => r.datname),
      keys,
      topics: (await admin.listTopics()).filter(mine),
      groups: (await admin.listGroups()).filter(mine),
    };
  } finally {
    await cleanupAll(
      () => db.end(),
      () => redis.disconnect(),
      () => admin.disconnect(),
    );
  }
}

/** Asserts that the run `run` left no database, key, topic, consumer group or process of `pids`. */
async function assertNothingLeft(run: string, pids: number[] = []) {
  assert.deepEqual(
    await resourcesOf(run),
    { databases: [], keys: [], topics: [], groups: [] },
    'every resource removed',
  );
  assert.deepEqual(pids.filter(alive), [], 'every process stopped');
}

/** Kills what run `run` left of `pids` and removes its resources, so that a failed test leaves nothing either. */
async function removeLeftovers(run: string, pids: readonly number[]) {
  for (const pid of pids.filter(alive)) process.kill(pid, 'SIGKILL');
  const left = await resourcesOf(run);
  const redis = new Redis(testInfra.redisUrl);
  await cleanupAll(
    () => deleteTopics(kafka, left.topics),
    // A killed member holds its group until its session timed out (bench:gateway's: 60 s).
    () =>
      deleteGroups(kafka, (group) => left.groups.includes(group), { retries: 40, minTimeout: 1000, maxTimeout: 3000 }),
    ...left.databases.map((name) => () => dropDatabase(testDatabaseUrl(name))),
    () => deleteKeys(redis, `*${run}*`),
    () => redis.disconnect(),
  );
}

test('a benchmark that fails should stop its services and remove its topics, keys and databases', async () => {
  const bench = runBench({ BENCH_HTTP_FAIL: 'after-start' });
  const { run, pids } = await bench.started;
  const code = await bench.exited;
  assert.notEqual(code, 0, bench.output());
  assert.match(bench.output(), /failing on purpose/);
  await assertNothingLeft(run, pids);
});

test('a benchmark interrupted with SIGINT should stop its services and remove its resources', async () => {
  const bench = runBench({});
  const { run, pids } = await bench.started;
  bench.child.kill('SIGINT');
  assert.equal(await bench.exited, 130, bench.output());
  await assertNothingLeft(run, pids);
});

test('a benchmark interrupted again while it cleans up, or hung up on, should still remove everything', async () => {
  // A second Ctrl-C (or a SIGHUP, a closed terminal) reached the last-resort handler, which exited
  // at once: the run's topics, group, keys and database stayed (validator F1).
  const twice = runBench({});
  const first = await twice.started;
  twice.child.kill('SIGINT');
  await waitFor('the clean-up to start', 10_000, () => /SIGINT: stopping/.test(twice.output()) || undefined);
  twice.child.kill('SIGINT');
  assert.equal(await twice.exited, 130, twice.output());
  assert.match(twice.output(), /already cleaning up/);
  await assertNothingLeft(first.run, first.pids);

  const hangUp = runBench({});
  const second = await hangUp.started;
  hangUp.child.kill('SIGHUP');
  assert.equal(await hangUp.exited, 129, hangUp.output());
  await assertNothingLeft(second.run, second.pids);
});

test('a benchmark hung up on after its terminal went away should still remove everything', async () => {
  // A closed terminal: nobody reads its output any more, then SIGHUP. Writing the clean-up's first
  // line failed with EPIPE, an uncaught error that ended the process before it cleaned up.
  const bench = runBench({});
  const { run, pids } = await bench.started;
  bench.child.stdout.destroy();
  bench.child.stderr.destroy();
  bench.child.kill('SIGHUP');
  assert.equal(await bench.exited, 129);
  await assertNothingLeft(run, pids);
});

// The benchmarks that do not run through runScoped (bench:outbox is in its lib, bench:peers in its
// own package, bench:gateway keeps its own names) use withCleanup of @ripple/testing: each is
// interrupted with one SIGINT once its resources exist, with settings that keep it running meanwhile.
const standalone: {
  name: string;
  script: string;
  env: Record<string, string>;
  /** Whether the run made enough to be worth interrupting. */
  ready: (made: Awaited<ReturnType<typeof resourcesOf>>) => boolean;
}[] = [
  {
    name: 'bench:outbox',
    script: 'libs/outbox/dist/bench.js',
    env: { BENCH_BURST_EVENTS: '0', BENCH_STEADY_RATE: '100', BENCH_STEADY_SECONDS: '120' },
    ready: (made) => made.databases.length > 0 && made.topics.length > 0,
  },
  {
    name: 'bench:gateway',
    script: 'tests/e2e/dist/bench-gateway.js',
    env: {
      BENCH_GATEWAY_ONLY: 'latency',
      BENCH_LATENCY_RATE: '10',
      BENCH_LATENCY_SECONDS: '120',
      BENCH_LATENCY_SUBSCRIBERS: '2',
    },
    ready: (made) => made.topics.length > 0 && made.groups.length > 0 && made.keys.length > 0,
  },
  {
    name: 'bench:peers',
    script: 'bench/peers/dist/main.js',
    env: {
      BENCH_PEERS_ONLY: 'ripple',
      BENCH_PEERS_SUBSCRIBERS: '10',
      BENCH_PEERS_CLIENTS: '10',
      BENCH_PEERS_CHANNELS: '5',
      BENCH_PEERS_FANOUT_EVENTS: '5',
      BENCH_PEERS_BURST_EVENTS: '10',
      BENCH_PEERS_SECONDS: '120',
    },
    ready: (made) => made.topics.length > 0 && made.groups.length > 0 && made.keys.length > 0,
  },
];

/**
 * Runs `bench` until it made its resources, sends it `signal` (and `again` once it printed that it
 * cleans up), and asserts that it exits with `code` and leaves nothing of its run.
 */
async function interrupt(
  t: TestContext,
  { name, script, env, ready }: (typeof standalone)[number],
  signal: NodeJS.Signals,
  code: number,
  again?: NodeJS.Signals,
) {
  const bench = spawnBench(script, env);
  t.after(() => bench.child.kill('SIGKILL'));
  const run = await bench.run;
  let pids: number[] = [];
  t.after(() => removeLeftovers(run, pids));
  await waitFor(`${name} to make its resources`, 90_000, async () => ready(await resourcesOf(run)) || undefined);
  pids = childrenOf(bench.child.pid ?? 0);
  bench.child.kill(signal);
  if (again) {
    await waitFor('the clean-up to start', 10_000, () => /: stopping/.test(bench.output()) || undefined);
    bench.child.kill(again);
  }
  assert.equal(await bench.exited, code, bench.output());
  if (again) assert.match(bench.output(), /already cleaning up/);
  await assertNothingLeft(run, pids);
}

for (const bench of standalone) {
  test(`${bench.name} interrupted with SIGINT should exit 130 and leave no process, topic, group, key or database of its run`, (t) =>
    interrupt(t, bench, 'SIGINT', 130));
}

test('bench:peers interrupted again while it cleans up, or hung up on, should still remove everything', async (t) => {
  // Its own handler caught SIGINT and SIGTERM once (exit 130 for both): a second Ctrl-C or a SIGHUP ended it at once.
  const peers = standalone.find((b) => b.name === 'bench:peers');
  assert.ok(peers);
  await t.test('SIGINT twice', (t) => interrupt(t, peers, 'SIGINT', 130, 'SIGINT'));
  await t.test('SIGHUP', (t) => interrupt(t, peers, 'SIGHUP', 129));
});

test('a test process ended by a signal should take the services it spawned with it', async () => {
  // A test file killed (Ctrl-C, a runner's SIGTERM) used to leave its services running, orphaned.
  const iso = isolatedRun('sig');
  after(() => iso.cleanup());
  const harness = new URL('./harness.js', import.meta.url).href;
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { spawnService } = await import(${JSON.stringify(harness)});
       const gateway = await spawnService('fanout-gateway', JSON.parse(process.env.SERVICE_ENV));
       console.log('spawned ' + gateway.process.pid);
       setInterval(() => undefined, 1000);`,
    ],
    {
      cwd: ROOT,
      env: { ...process.env, SERVICE_ENV: JSON.stringify({ ...iso.env, KAFKA_GROUP_ID: `sig.${iso.run}` }) },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const pid = await waitFor(
    'the service to start',
    90_000,
    () => Number(/spawned (\d+)/.exec(output)?.[1]) || undefined,
  );
  assert.ok(alive(pid));
  child.kill('SIGTERM');
  assert.equal(await exited, 143, output);
  await waitFor('the service to stop', 10_000, () => !alive(pid) || undefined);
});

test('a test file whose before() fails should still remove the topics, keys and databases of its run and report the failed step', async () => {
  // In CI a gateway that did not start left `gateway` undefined; `await gateway.stop()` threw in
  // the after hook and the run's clean-up after it never ran.
  const dir = mkdtempSync(join(tmpdir(), 'failed-before-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const runFile = join(dir, 'run');
  // NODE_TEST_CONTEXT (this runner sets it) would make the child report to this runner as a
  // subtest and exit 0 instead of running the fixture as a runner of its own.
  const env: NodeJS.ProcessEnv = { ...process.env, FIXTURE_RUN_FILE: runFile };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ['--test', 'tests/e2e/dist/failed-before.fixture.js'], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.notEqual(code, 0, output);
  assert.match(output, /failing on purpose: the gateway did not start/);
  assert.match(output, /1 of 2 clean-up steps failed: Cannot read properties of undefined \(reading 'stop'\)/);
  const run = readFileSync(runFile, 'utf8');
  assert.match(run, /^\w+$/, 'the fixture wrote its run id');
  await assertNothingLeft(run);
});
