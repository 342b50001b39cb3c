import { execFileSync } from 'node:child_process';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { privateKafka } from './kafka-broker.js';

/** Live (not zombie) process ids of session `sid`. */
function sessionProcesses(sid: number): number[] {
  try {
    return execFileSync('ps', ['-o', 'pid=,stat=', '--sid', String(sid)], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .map((line) => line.trim().split(/\s+/))
      .filter(([, stat]) => stat !== undefined && !stat.startsWith('Z'))
      .map(([pid]) => Number(pid));
  } catch {
    return []; // ps exits 1 when nothing matches
  }
}

test('a private broker should be gone, JVM included, when stop resolves, so its directory can be removed', async (t) => {
  const kafka = await privateKafka();
  t.after(() => kafka.remove());
  await kafka.start();
  const sid = kafka.pid();
  assert.ok(sid, 'the broker runs');
  const jvm = sessionProcesses(sid).find((pid) => pid !== sid);
  assert.ok(jvm, 'the JVM runs under the wrapper shell');
  // A JVM slow to shut down (a loaded machine): it gets the SIGTERM only once resumed, 2 s after
  // the wrapper shell is gone. `stop` used to return then (the port still answered, then closed
  // early in the shutdown) while the JVM went on writing in the data directory.
  process.kill(jvm, 'SIGSTOP');
  const resume = setTimeout(() => process.kill(jvm, 'SIGCONT'), 2000);
  try {
    await kafka.stop();
  } finally {
    clearTimeout(resume);
    try {
      process.kill(jvm, 'SIGCONT');
    } catch {
      // gone
    }
  }
  assert.deepEqual(sessionProcesses(sid), [], 'no process of the broker left');
  kafka.remove(); // throws when the directory cannot be removed (ENOTEMPTY while the JVM wrote in it)
});
