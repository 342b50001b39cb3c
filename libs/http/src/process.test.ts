import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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
