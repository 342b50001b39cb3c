import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { cpuOf } from '@ripple/testing';

/** The newest process whose command line matches `pattern` (pgrep -f), when one runs. */
function pidOf(pattern: string): number | undefined {
  try {
    return Number(execFileSync('pgrep', ['-f', pattern], { encoding: 'utf8' }).trim().split('\n').at(-1));
  } catch {
    return undefined;
  }
}

/** The local Kafka broker's pid, when one runs. */
export const kafkaPid = (): number | undefined => pidOf('java.*kafka.Kafka');

/** The local Redis server's pid, when one runs. */
export const redisPid = (): number | undefined => pidOf('redis-server');

/** CPU seconds of each PostgreSQL process by pid (the server is shared: other clients count too). */
export function postgresCpu(): Map<string, number> {
  const cpu = new Map<string, number>();
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres') cpu.set(pid, cpuOf(Number(pid)));
    } catch {
      // gone meanwhile
    }
  }
  return cpu;
}

/** CPU seconds PostgreSQL used since `before` (a backend that exited meanwhile is not counted). */
export function postgresCpuSince(before: Map<string, number>): number {
  let total = 0;
  for (const [pid, now] of postgresCpu()) if (Number.isFinite(now)) total += now - (before.get(pid) ?? 0);
  return total;
}

/** Nearest-rank percentiles of `values`, as strings ('-' when empty). */
export function percentiles(values: number[]): { p50: string; p99: string } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  return { p50: `${at(50) ?? '-'}`, p99: `${at(99) ?? '-'}` };
}

/** The value of a sample line `name{...} value` (summed over its label sets), or NaN. */
export function sample(text: string, name: string): number {
  let sum = Number.NaN;
  for (const m of text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)`, 'gm'))) {
    sum = (Number.isNaN(sum) ? 0 : sum) + Number(m[1]);
  }
  return sum;
}
