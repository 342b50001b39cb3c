import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

/** Runs `runProcess('svc', start)` in a child process; `start` is the source of a function. */
function runChild(start: string) {
  const source = `import { ConfigError } from '@ripple/config';
import { runProcess } from './process.js';
runProcess('svc', ${start});`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', source], { cwd: here, encoding: 'utf8' });
}

test('a configuration problem should print one message with no stack trace and exit 2, also when start throws at once', () => {
  // Domain services read their configuration while they make the start-up promise
  // (`startDomainService({ config: loadConfig(…) })`): the throw comes before any promise.
  for (const start of [
    `() => { throw new ConfigError(['DB_POOL_MAX: Expected integer (got "0")']); }`,
    `async () => { throw new ConfigError(['DB_POOL_MAX: Expected integer (got "0")']); }`,
  ]) {
    const child = runChild(start);
    assert.equal(child.status, 2, child.stderr);
    assert.equal(child.stderr, 'svc: Invalid configuration:\n  - DB_POOL_MAX: Expected integer (got "0")\n', start);
  }
});

// The logger writes to stdout asynchronously (batched); a real child process checks that the lines
// it logged right before it ended all reach stdout, however it ended.
const FIXTURE = fileURLToPath(new URL('./process.fixture.js', import.meta.url));
/** Enough lines (~3 MB) that most are still buffered in the child when it ends. */
const LINES = 20_000;

interface Line {
  level: number;
  msg: string;
  i?: number;
  err?: { message: string };
}

/** Runs the fixture in `mode`; `whenReady` runs once it logged "ready". Resolves to its lines and exit code. */
async function runFixture(
  mode: 'graceful' | 'exit' | 'crash' | 'reject' | 'slow',
  whenReady?: (child: ReturnType<typeof spawn>) => void,
  whenStopping?: (child: ReturnType<typeof spawn>) => void,
): Promise<{ lines: Line[]; code: number | null }> {
  const child = spawn(process.execPath, [FIXTURE, mode, String(LINES)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = once(child, 'exit') as Promise<[number | null]>;
  const lines: Line[] = [];
  for await (const text of createInterface({ input: child.stdout })) {
    const line = JSON.parse(text) as Line;
    lines.push(line);
    if (line.msg === 'ready') whenReady?.(child);
    if (line.msg === 'shutting down') whenStopping?.(child);
  }
  const [code] = await exited;
  return { lines, code };
}

function assertBurst(lines: Line[]): void {
  const burst = lines.filter((l) => l.msg === 'burst line').map((l) => l.i);
  assert.equal(burst.length, LINES, 'every line of the burst reached stdout');
  assert.deepEqual(
    burst,
    [...burst].sort((a = 0, b = 0) => a - b),
    'in order',
  );
}

test('a graceful shutdown should write every line logged before the process exits', async () => {
  const { lines, code } = await runFixture('graceful', (child) => child.kill('SIGTERM'));
  assert.equal(code, 0);
  assertBurst(lines);
  assert.equal(lines.at(-1)?.msg, 'stopped', 'the last line too');
});

test('process.exit should write every line logged before it', async () => {
  const { lines, code } = await runFixture('exit');
  assert.equal(code, 0);
  assertBurst(lines);
});

test('an uncaught exception should be logged as fatal after every earlier line, and end the process', async () => {
  const { lines, code } = await runFixture('crash');
  assert.equal(code, 1);
  assertBurst(lines);
  const fatal = lines.at(-1);
  assert.equal(fatal?.level, 60, 'fatal');
  assert.equal(fatal.msg, 'uncaught exception; exiting');
  assert.equal(fatal.err?.message, 'fixture crash');
});

test('an unhandled rejection should be logged as fatal after every earlier line, and end the process', async () => {
  const { lines, code } = await runFixture('reject');
  assert.equal(code, 1);
  assertBurst(lines);
  const fatal = lines.at(-1);
  assert.equal(fatal?.level, 60, 'fatal');
  assert.equal(fatal.err?.message, 'fixture rejection');
});

test('a second SIGTERM during a slow shutdown should end the process at once, after writing every line logged before it', async () => {
  const started = Date.now();
  const { lines, code } = await runFixture(
    'slow',
    (child) => child.kill('SIGTERM'),
    (child) => setImmediate(() => child.kill('SIGTERM')),
  );
  assert.ok(Date.now() - started < 30_000, 'it did not wait for the slow stop');
  assertBurst(lines);
  assert.equal(code, 1, 'not a clean stop');
});
