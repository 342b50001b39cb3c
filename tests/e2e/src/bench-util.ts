import { execFileSync } from 'node:child_process';

/** The local Kafka broker's pid, when one runs. */
export function kafkaPid(): number | undefined {
  try {
    return Number(execFileSync('pgrep', ['-f', 'java.*kafka.Kafka'], { encoding: 'utf8' }).trim().split('\n').at(-1));
  } catch {
    return undefined;
  }
}

/** Nearest-rank percentiles of `values`, as strings ('-' when empty). */
export function percentiles(values: number[]): { p50: string; p99: string } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  return { p50: `${at(50) ?? '-'}`, p99: `${at(99) ?? '-'}` };
}
