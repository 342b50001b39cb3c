import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readRepoFile } from './manifests.js';
import { parseDockerfile } from './dockerfile.js';
import type { Stage } from './dockerfile.js';

// Issue 17, finding 1, checked statically (no Docker engine here): a multi-stage build whose
// runtime stage holds one service's production dependencies only and runs as a non-root user.
const stages = parseDockerfile();
const stage = (name: string): Stage => {
  const found = stages.find((s) => s.name === name);
  assert.ok(found, `stage ${name}`);
  return found;
};
const lines = (s: Stage, keyword: string) => s.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);

test('the Dockerfile should build the workspace once, from the lockfile, on a pinned Node image', () => {
  const build = stage('build');
  assert.match(build.from, /^node:\d+\.\d+-\w+-slim$/, 'a pinned, slim Node base');
  assert.ok(lines(build, 'RUN').some((r) => r.includes('pnpm install --frozen-lockfile') && r.includes('pnpm build')));
});

test('the Dockerfile deploy stage should copy one service with production dependencies only', () => {
  const deploy = stage('deploy');
  assert.equal(deploy.from, 'build');
  assert.deepEqual(lines(deploy, 'ARG'), ['SERVICE']);
  const run = lines(deploy, 'RUN').join(' ');
  assert.match(run, /pnpm --filter "\.\/services\/\$\{SERVICE\}" deploy --prod/);
  assert.match(run, /rm -rf \/app\/src/, 'TypeScript sources stay behind');
});

test('the runtime stage should hold only the deployed service and run it as a non-root user', () => {
  const service = stages.at(-1);
  assert.ok(service, 'a final stage');
  assert.equal(service.name, 'service', 'the final stage is the default target');
  assert.equal(service.from, stage('build').from, 'the same Node as the build');
  assert.deepEqual(lines(service, 'COPY'), ['--from=deploy /app /app'], 'nothing but the deployed service');
  assert.equal(lines(service, 'RUN').length, 0, 'no package manager runs in the runtime image');
  const users = lines(service, 'USER');
  assert.equal(users.length, 1);
  assert.doesNotMatch(users[0] ?? '', /^(root|0)(:|$)/, 'not root');
  assert.match(lines(service, 'ENV').join(' '), /NODE_ENV=production/);
  assert.deepEqual(lines(service, 'CMD'), ['["node", "dist/main.js"]'], 'exec form: node gets SIGTERM itself');
});

test('.dockerignore should keep host builds and dependencies out of the build context', () => {
  const ignored = readRepoFile('.dockerignore').split('\n');
  for (const pattern of ['**/node_modules', '**/dist', '.git', 'services/*/src/generated']) {
    assert.ok(ignored.includes(pattern), pattern);
  }
});
