import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

/**
 * Bundles the browser app (compiled `web/app.js` with @ripple/client) into one minified ES
 * module, in memory, once at start-up. Rejects with esbuild's errors.
 */
export async function bundleWebApp(): Promise<string> {
  const result = await build({
    entryPoints: [fileURLToPath(new URL('./web/app.js', import.meta.url))],
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0]?.text ?? '';
}
