import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The suite's runner flags (scripts/test-flags.mjs), as scripts/run-tests.mjs passes them.
const { TEST_RUNNER_FLAGS } = (await import(new URL('../../../scripts/test-flags.mjs', import.meta.url).href)) as {
  TEST_RUNNER_FLAGS: string[];
};

/** Runs node:test with the suite's flags on one file; resolves with its exit code and output. */
function runSuiteOn(file: string): Promise<{ code: number | null; output: string }> {
  // Without the parent runner's NODE_TEST_CONTEXT, or the child takes itself for a nested run.
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, [...TEST_RUNNER_FLAGS, file], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  // A bound on this test only (the file under test would otherwise run forever): far above the
  // second or so it takes.
  const bound = setTimeout(() => child.kill('SIGKILL'), 120_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(bound);
      resolve({ code, output });
    }),
  );
}

test('a test file whose failed after hook left a server open should end, failed, instead of hanging the run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ripple-runner-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'leaks.test.mjs');
  // What redaction.test did when its gateway failed to start: the hook threw before closing the
  // receiver it had opened, and the file's process (and so the whole suite) never ended.
  writeFileSync(
    file,
    `import { after, test } from 'node:test';
import { createServer } from 'node:http';
const server = createServer().listen(0, '127.0.0.1');
let gateway;
after(async () => { await gateway.stop(); server.close(); });
test('passes', () => {});
`,
  );
  const { code, output } = await runSuiteOn(file);
  assert.notEqual(code, null, `killed by the bound, so it hung:\n${output}`);
  assert.equal(code, 1, output);
  assert.match(output, /# pass 1/);
  assert.match(output, /reading 'stop'/);
});
