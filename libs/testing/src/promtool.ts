import { AssertionError } from 'node:assert';
import { spawn } from 'node:child_process';

/**
 * Runs `promtool check metrics` (Prometheus' own linter) on a /metrics exposition and throws an
 * AssertionError with its findings when it refuses it (`what` names the process). promtool comes
 * with the Debian package `prometheus`; scripts/test.sh installs it, and without it this throws
 * an error that says so.
 */
export async function assertPromtoolAccepts(what: string, exposition: string): Promise<void> {
  const { code, output } = await new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new Error('promtool not found: install the Debian package prometheus (scripts/test.sh does)')
          : err,
      ),
    );
    child.on('close', (exitCode) => resolve({ code: exitCode, output }));
    child.stdin.end(exposition);
  });
  if (code !== 0) throw new AssertionError({ message: `promtool check metrics refused ${what}:\n${output}` });
}
