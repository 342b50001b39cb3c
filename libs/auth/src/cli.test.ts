import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
const run = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], {
    env: { ...process.env, NODE_ENV: 'development', JWT_SECRET: 'a-cli-test-secret-0123456789' },
    encoding: 'utf8',
  });

test('pnpm token should mint a token for a valid user id', () => {
  const out = run('--user', 'u_1-x');
  assert.equal(out.status, 0, out.stderr);
  assert.match(out.stdout.trim(), /^[\w-]+\.[\w-]+\.[\w-]+$/);
});

test('pnpm token should refuse a user id no service accepts, and unknown options, with its usage', () => {
  for (const args of [['--user', 'bad id'], ['--user', 'x'.repeat(129)], ['--user'], ['--nope']]) {
    const out = run(...args);
    assert.equal(out.status, 2, args.join(' '));
    assert.match(out.stderr, /usage: pnpm token --user <userId>/);
    assert.equal(out.stdout, '');
  }
});

test('pnpm token --help should print its usage and succeed', () => {
  const out = run('--help');
  assert.equal(out.status, 0);
  assert.match(out.stdout, /usage: pnpm token/);
});
