import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

/**
 * Node options that make a process write a V8 CPU profile into `dir` when it exits (cleanly: a
 * SIGKILLed process writes none); none when `dir` is undefined (a benchmark's `*_CPU_PROF` unset).
 */
export function cpuProfileArgs(dir: string | undefined): string[] {
  return dir === undefined || dir === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`];
}

/** CPU seconds (user + system) a process has used so far, from /proc; NaN when it is gone. */
export function cpuOf(pid: number | undefined): number {
  if (pid === undefined) return Number.NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/**
 * Scheduler figures of a process's main thread (Linux /proc/<pid>/task/<pid>/schedstat): time
 * on a CPU and time runnable but waiting for one, in ms. The second one tells CPU starvation
 * (a loaded machine) apart from a blocked or idle event loop. Undefined once the process is gone.
 */
export function schedOf(pid: number | undefined): { runMs: number; waitMs: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(' ');
    return { runMs: Number(run) / 1e6, waitMs: Number(wait) / 1e6 };
  } catch {
    return undefined;
  }
}

/**
 * Calls `onPort` with the port of the first `"listening"` line a service logs on `stdout` (its JSON
 * log line with `port`). Reads whole lines (the logger writes lines in batches, which a read may
 * cut anywhere) and only until that line: the reader is then closed and the stream resumed, so other
 * `data` listeners (a caller keeping the output) go on receiving it.
 */
export function onListening(stdout: Readable, onPort: (port: number) => void): void {
  const lines = createInterface({ input: stdout });
  lines.on('line', (line) => {
    if (!line.includes('"listening"')) return;
    lines.close();
    stdout.resume();
    onPort((JSON.parse(line) as { port: number }).port);
  });
}
