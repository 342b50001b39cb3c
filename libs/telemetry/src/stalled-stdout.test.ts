import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const FIXTURE = fileURLToPath(new URL('./stalled-stdout.fixture.js', import.meta.url));
const MiB = 1024 * 1024;

interface Report {
  heapGrowth: number;
  rss: number;
  dropped: number;
}

test('a process whose stdout stalls should drop and count log lines past the buffer bound, and log again once stdout drains', async (t) => {
  // 64 MiB of lines against the default 16 MiB bound; nobody reads the child's stdout until it reports.
  const child = fork(FIXTURE, [String(64 * MiB)], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  t.after(() => child.kill('SIGKILL'));
  const { stdout } = child;
  assert.ok(stdout);
  const exited = once(child, 'exit');
  const [report] = (await once(child, 'message')) as [Report];
  t.diagnostic(
    `heap growth ${(report.heapGrowth / MiB).toFixed(1)} MiB, rss ${(report.rss / MiB).toFixed(1)} MiB, dropped ${report.dropped}`,
  );
  // Unbounded, the buffered lines alone would hold over 64 MiB of heap.
  assert.ok(report.heapGrowth < 40 * MiB, `heap grew ${report.heapGrowth} bytes while stdout stalled`);
  assert.ok(report.dropped > 0, `log_lines_dropped_total is ${report.dropped}`);

  // Reading again: the buffered lines arrive whole, then the line logged after the stall.
  child.send('again');
  let lines = 0;
  let after = false;
  for await (const text of createInterface({ input: stdout })) {
    const line = JSON.parse(text) as { msg: string; service: string };
    assert.equal(line.service, 'stalled-stdout-fixture');
    lines++;
    if (line.msg === 'after the stall') after = true;
  }
  await exited;
  assert.ok(after, 'the line logged after the stall reached stdout');
  assert.ok(lines > 1, `${lines} lines read`);
});
