/** The longest delay Node's timers take; a longer one overflows and fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer that can be cancelled; `cancel` is safe to call more than once. */
export interface LongTimer {
  cancel(): void;
}

/**
 * Runs `fn(arg)` once `ms` from now (by `now`), however long that is: delays that come from a
 * token, a client or configuration may exceed what `setTimeout` takes, so a long delay is waited
 * out in steps of at most MAX_TIMER_MS, each measured against the deadline. Non-finite or negative
 * delays count as 0. The timer does not keep the process alive. `fn` and `arg` (rather than a
 * closure) let many timers share one function: a session holds one of these for its whole life.
 */
export function setLongTimeout(fn: () => void, ms: number, now?: () => number): LongTimer;
export function setLongTimeout<A>(fn: (arg: A) => void, ms: number, now: () => number, arg: A): LongTimer;
export function setLongTimeout<A>(
  fn: (arg: A | undefined) => void,
  ms: number,
  now: () => number = Date.now,
  arg?: A,
): LongTimer {
  return new LongTimeout(fn, now() + (Number.isNaN(ms) ? 0 : Math.max(0, ms)), now, arg);
}

class LongTimeout<A> implements LongTimer {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly fn: (arg: A) => void,
    private readonly deadline: number,
    private readonly now: () => number,
    private readonly arg: A,
  ) {
    this.arm();
  }

  cancel(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  fire(): void {
    if (this.timer === undefined) return; // cancelled
    this.timer = undefined;
    if (this.deadline - this.now() > 0) this.arm();
    else this.fn(this.arg);
  }

  private arm(): void {
    this.timer = setTimeout(fireLongTimeout, Math.min(Math.max(0, this.deadline - this.now()), MAX_TIMER_MS), this);
    this.timer.unref();
  }
}

function fireLongTimeout(timer: { fire(): void }): void {
  timer.fire();
}

/** A task run over and over; `stop` resolves once the run in flight, if any, ended. */
export interface Repeating {
  stop(): Promise<void>;
}

/**
 * Runs `task` every `intervalMs` (ms), the first time `intervalMs` from now, never two runs at
 * once: a run that takes longer than the interval delays the next, which then starts as soon as
 * it ended. (Overlapping runs of a registry heartbeat behind a slow Redis each hold a renewal of
 * every connection in memory, and each adds load to the Redis that is slow.) A run that rejects
 * is passed to `onError`; the next one goes ahead. `now` is the clock (ms).
 */
export function repeat(
  task: () => Promise<void>,
  intervalMs: number,
  onError: (err: unknown) => void,
  now: () => number = Date.now,
): Repeating {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const tick = (): void => {
    timer = undefined;
    const startedAt = now();
    running = task()
      .catch(onError)
      .finally(() => {
        running = undefined;
        if (!stopped) timer = setTimeout(tick, Math.max(0, intervalMs - (now() - startedAt)));
      });
  };
  timer = setTimeout(tick, intervalMs);
  return {
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
  };
}
