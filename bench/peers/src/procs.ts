// Processes the benchmark measures: spawning the real gateway, CPU seconds and RSS from /proc.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { onListening } from '@ripple/testing';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Resident set size in MiB; NaN when the process is gone. */
export function rssMb(pid: number | undefined): number {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid ?? 0}/status`, 'utf8'))?.[1]);
    return kb / 1024;
  } catch {
    return Number.NaN;
  }
}

/** The pid of the newest process whose command line matches `pattern` (read only, never signalled). */
export function pidOf(pattern: string): number | undefined {
  try {
    return Number(execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).trim().split('\n').at(-1));
  } catch {
    return undefined;
  }
}

export interface Gateway {
  readonly port: number;
  readonly process: ChildProcess;
}

/**
 * Starts `services/fanout-gateway/dist/main.js` (with Node options `nodeArgs`, e.g. `--cpu-prof`)
 * and resolves with its port once it listens.
 */
export function spawnGateway(
  env: Record<string, string>,
  nodeArgs: readonly string[] = [],
  deadlineMs = 60_000,
): Promise<Gateway> {
  const child = spawn(process.execPath, [...nodeArgs, 'services/fanout-gateway/dist/main.js'], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`the gateway did not start within ${deadlineMs} ms:\n${output}`));
    }, deadlineMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the gateway exited with ${code} before listening:\n${output}`));
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => (output = (output + chunk.toString()).slice(-20_000)));
    onListening(child.stdout, (port) => {
      clearTimeout(timer);
      resolve({ port, process: child });
    });
  });
}
