import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const LIMIT_BYTES = 10 * 1024;

test('the browser bundle of @ripple/client should stay within 10 KB minified and gzipped', async () => {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('./index.js', import.meta.url))],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  const code = result.outputFiles[0]?.contents ?? new Uint8Array();
  const gzipped = gzipSync(code, { level: 9 }).length;
  process.stdout.write(`@ripple/client bundle: ${code.length} B minified, ${gzipped} B minified+gzipped\n`);
  assert.ok(code.length > 1000, 'the bundle holds the client');
  assert.ok(gzipped <= LIMIT_BYTES, `${gzipped} B > ${LIMIT_BYTES} B`);
});
