import { build } from 'esbuild';

/**
 * Bundles `entryFile` (compiled JavaScript) and everything it imports into one minified ES module
 * for browsers, in memory, and returns its text. Rejects with esbuild's errors.
 */
export async function bundleForBrowser(entryFile: string): Promise<string> {
  const result = await build({
    entryPoints: [entryFile],
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
