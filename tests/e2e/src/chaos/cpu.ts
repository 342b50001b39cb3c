import { cpuOf, schedOf } from '@ripple/testing';

interface Sample {
  readonly at: number;
  readonly sched: Map<string, { runMs: number; waitMs: number }>;
}

/**
 * Samples the main threads of named processes every `everyMs` while it runs, to show, second
 * by second, which process got CPU and which waited for it around a fault.
 */
export class CpuSampler {
  private readonly samples: Sample[] = [];
  private readonly timer: ReturnType<typeof setInterval>;

  /** `pids` is read at each sample (processes are replaced during a scenario). */
  constructor(
    private readonly pids: () => Record<string, number | undefined>,
    everyMs = 1000,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /**
   * One line per interval from `from` (epoch ms) on: per process, ms on CPU / ms waiting for a
   * CPU in that interval (a process that appeared or disappeared in it is left out).
   */
  report(from = 0, to = Infinity): string {
    const lines: string[] = [];
    for (let i = 1; i < this.samples.length; i++) {
      const a = this.samples[i - 1];
      const b = this.samples[i];
      if (!a || !b || b.at < from || a.at > to) continue;
      const cells: string[] = [];
      for (const [name, now] of b.sched) {
        const before = a.sched.get(name);
        if (before)
          cells.push(`${name} ${Math.round(now.runMs - before.runMs)}/${Math.round(now.waitMs - before.waitMs)}`);
      }
      lines.push(`${new Date(b.at).toISOString().slice(11, 23)} (${b.at - a.at} ms) run/wait ms: ${cells.join(', ')}`);
    }
    return lines.join('\n');
  }

  private sample(): void {
    const sched = new Map<string, { runMs: number; waitMs: number }>();
    for (const [name, pid] of Object.entries(this.pids())) {
      const s = schedOf(pid);
      if (s) sched.set(name, s);
    }
    this.samples.push({ at: Date.now(), sched });
  }
}

/**
 * The CPU time (all threads) each named process used from its creation to `done()`, to say what
 * a piece of work cost each process regardless of how long a loaded machine made it take.
 * A process replaced meanwhile is left out.
 */
export function cpuUse(pids: () => Record<string, number | undefined>): {
  done(): { ms: Record<string, number>; wallMs: number };
} {
  const at = Date.now();
  const before = new Map<string, [number | undefined, number]>();
  for (const [name, pid] of Object.entries(pids())) {
    const ms = cpuOf(pid) * 1000;
    if (!Number.isNaN(ms)) before.set(name, [pid, ms]);
  }
  return {
    done: () => {
      const ms: Record<string, number> = {};
      for (const [name, pid] of Object.entries(pids())) {
        const [was, start] = before.get(name) ?? [];
        const now = cpuOf(pid) * 1000;
        if (was === pid && start !== undefined && !Number.isNaN(now)) ms[name] = now - start;
      }
      return { ms, wallMs: Date.now() - at };
    },
  };
}
