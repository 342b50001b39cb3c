/** The longest delay Node's timers take; a longer one overflows and fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer that can be cancelled; `cancel` is safe to call more than once. */
export interface LongTimer {
  cancel(): void;
}

/**
 * Runs `fn` once after `ms`, however long that is: delays that come from a token, a client or
 * configuration may exceed what `setTimeout` takes, so a long delay is waited out in steps of at
 * most MAX_TIMER_MS. Non-finite or negative delays count as 0. The timer does not keep the
 * process alive.
 */
export function setLongTimeout(fn: () => void, ms: number): LongTimer {
  let remaining = Number.isFinite(ms) ? Math.max(0, ms) : ms > 0 ? Number.MAX_SAFE_INTEGER : 0;
  let timer: NodeJS.Timeout | undefined;
  const arm = (): void => {
    const step = Math.min(remaining, MAX_TIMER_MS);
    remaining -= step;
    timer = setTimeout(() => {
      timer = undefined;
      if (remaining > 0) arm();
      else fn();
    }, step);
    timer.unref();
  };
  arm();
  return {
    cancel() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      remaining = 0;
    },
  };
}
