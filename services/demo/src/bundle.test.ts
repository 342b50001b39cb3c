import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { bundleForBrowser } from './bundle.js';

const LIMIT_BYTES = 10 * 1024;

test('the browser bundle of @ripple/client should stay within 10 KB minified and gzipped', async () => {
  const code = Buffer.from(await bundleForBrowser(fileURLToPath(import.meta.resolve('@ripple/client'))));
  const gzipped = gzipSync(code, { level: 9 }).length;
  process.stdout.write(`@ripple/client bundle: ${code.length} B minified, ${gzipped} B minified+gzipped\n`);
  assert.match(code.toString(), /access_token/, 'the bundle holds the client');
  assert.ok(gzipped <= LIMIT_BYTES, `${gzipped} B > ${LIMIT_BYTES} B`);
});
