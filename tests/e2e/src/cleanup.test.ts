import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createKafka, createKafkaAdmin } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { testInfra, waitFor } from '@ripple/testing';
import { isolatedRun } from './harness.js';

// The shared harness (runScoped) must leave nothing behind when a script fails or is interrupted:
// checked on bench:http itself, failed on purpose and stopped with SIGINT. Test files clean up
// through cleanupAll, checked on a test file whose before() fails (failed-before.fixture.ts).
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function runBench(env: Record<string, string>) {
  const child = spawn(process.execPath, ['tests/e2e/dist/bench-http.js'], {
    cwd: ROOT,
    env: { ...process.env, BENCH_HTTP_ONLY: 'post', BENCH_HTTP_SECONDS: '60', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const started = waitFor('the bench to start its services', 90_000, () => {
    const m = /bench-http: run=(\S+) pids=(\S+)/.exec(output);
    return m ? { run: m[1] ?? '', pids: (m[2] ?? '').split(',').map(Number) } : undefined;
  });
  return { child, exited, started, output: () => output };
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Asserts that the isolated run `run` of `tag` left no process of `pids`, database, key or topic. */
async function assertNothingLeft(tag: string, run: string, pids: number[] = []) {
  assert.deepEqual(pids.filter(alive), [], 'every service process stopped');
  const db = new pg.Client({ connectionString: testInfra.databaseUrl });
  await db.connect();
  try {
    const { rows } = await db.query('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${tag}\\_${run}\\_%`]);
    assert.deepEqual(rows, [], 'every database dropped');
  } finally {
    await db.end();
  }
  const redis = new Redis(testInfra.redisUrl);
  try {
    assert.deepEqual(await redis.keys(`${tag}:${run}:*`), [], 'every Redis key removed');
  } finally {
    redis.disconnect();
  }
  const admin = createKafkaAdmin(
    createKafka({
      brokers: testInfra.kafkaBrokers,
      clientId: 'cleanup-test',
      logger: createLogger('cleanup-test', 'silent'),
    }),
  );
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${tag}.${run}.`));
    assert.deepEqual(topics, [], 'every topic deleted');
  } finally {
    await admin.disconnect();
  }
}

test('a benchmark that fails should stop its services and remove its topics, keys and databases', async () => {
  const bench = runBench({ BENCH_HTTP_FAIL: 'after-start' });
  const { run, pids } = await bench.started;
  const code = await bench.exited;
  assert.notEqual(code, 0, bench.output());
  assert.match(bench.output(), /failing on purpose/);
  await assertNothingLeft('bh', run, pids);
});

test('a benchmark interrupted with SIGINT should stop its services and remove its resources', async () => {
  const bench = runBench({});
  const { run, pids } = await bench.started;
  bench.child.kill('SIGINT');
  assert.equal(await bench.exited, 130, bench.output());
  await assertNothingLeft('bh', run, pids);
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
  await assertNothingLeft('bh', first.run, first.pids);

  const hangUp = runBench({});
  const second = await hangUp.started;
  hangUp.child.kill('SIGHUP');
  assert.equal(await hangUp.exited, 129, hangUp.output());
  await assertNothingLeft('bh', second.run, second.pids);
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
  await assertNothingLeft('bh', run, pids);
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
  await assertNothingLeft('fb', run);
});
