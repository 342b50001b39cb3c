/** The longest delay Node's timers take; a longer one overflows and fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer that can be cancelled; `cancel` is safe to call more than once. */
export interface LongTimer {
  cancel(): void;
}

/**
 * Runs `fn` once `ms` from now (by `now`), however long that is: delays that come from a token, a
 * client or configuration may exceed what `setTimeout` takes, so a long delay is waited out in
 * steps of at most MAX_TIMER_MS, each measured against the deadline. Non-finite or negative delays
 * count as 0. The timer does not keep the process alive.
 */
export function setLongTimeout(fn: () => void, ms: number, now: () => number = Date.now): LongTimer {
  const deadline = now() + (Number.isNaN(ms) ? 0 : Math.max(0, ms));
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;
  const arm = (): void => {
    timer = setTimeout(
      () => {
        timer = undefined;
        if (cancelled) return;
        if (deadline - now() > 0) arm();
        else fn();
      },
      Math.min(Math.max(0, deadline - now()), MAX_TIMER_MS),
    );
    timer.unref();
  };
  arm();
  return {
    cancel() {
      cancelled = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
    },
  };
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
