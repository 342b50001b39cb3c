/** The longest delay Node's timers take; a longer one overflows and fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A timer that can be cancelled; `cancel` is safe to call more than once. */
export interface LongTimer {
  cancel(): void;
}

/**
 * Many one-shot timers on one Node timer: a binary heap by deadline, with one timer armed for the
 * earliest, in steps of at most MAX_TIMER_MS, each measured against the deadline: delays that come
 * from a token, a client or configuration may exceed what `setTimeout` takes. For a timer per
 * connection (the session's token expiry), where a Node timer each cost ~210 bytes (a Timeout, a
 * long-delay wrapper, a share of a timer list) and an entry here costs ~50. Deadlines are exact to the ms by
 * `now`; equal ones fire in no particular order. `fire` is called with the scheduled `arg`; a
 * `fire` that throws does not stop the others (the error is rethrown asynchronously, as a timer's
 * would be). Timers do not keep the process alive.
 */
export class DeadlineQueue<A> {
  private readonly heap: QueuedDeadline<A>[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** The deadline the timer is armed for (ms by `now`), Infinity when none. */
  private armedFor = Infinity;

  constructor(
    private readonly fire: (arg: A) => void,
    private readonly now: () => number = Date.now,
  ) {}

  /** Deadlines scheduled and neither fired nor cancelled. */
  get size(): number {
    return this.heap.length;
  }

  /** Calls `fire(arg)` once, `ms` from now (non-finite or negative: at once, in a timer's turn). */
  schedule(ms: number, arg: A): LongTimer {
    const entry = new QueuedDeadline(
      this,
      this.now() + (Number.isNaN(ms) ? 0 : Math.max(0, ms)),
      arg,
      this.heap.length,
    );
    this.heap.push(entry);
    this.up(entry.index);
    if (entry.at < this.armedFor) this.arm();
    return entry;
  }

  /** Takes `entry` out of the heap (a cancel); the timer may fire early and find nothing due. */
  remove(entry: QueuedDeadline<A>): void {
    const i = entry.index;
    if (i < 0 || this.heap[i] !== entry) return;
    entry.index = -1;
    const last = this.heap.pop();
    if (last === undefined || last === entry) return;
    this.heap[i] = last;
    last.index = i;
    this.down(i);
    this.up(last.index);
  }

  /** Fires what is due, then arms the timer for the next deadline. */
  run(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = this.now();
    for (let top = this.heap[0]; top !== undefined && top.at <= now; top = this.heap[0]) {
      this.remove(top);
      try {
        this.fire(top.arg);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
    this.arm();
  }

  private arm(): void {
    const top = this.heap[0];
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
    if (top === undefined) return;
    this.armedFor = top.at;
    this.timer = setTimeout(runDeadlines, Math.min(Math.max(0, top.at - this.now()), MAX_TIMER_MS), this);
    this.timer.unref();
  }

  private up(i: number): void {
    const { heap } = this;
    const entry = heap[i];
    if (entry === undefined) return;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = heap[parentIndex] as QueuedDeadline<A>;
      if (parent.at <= entry.at) break;
      heap[i] = parent;
      parent.index = i;
      i = parentIndex;
    }
    heap[i] = entry;
    entry.index = i;
  }

  private down(i: number): void {
    const { heap } = this;
    const entry = heap[i];
    if (entry === undefined) return;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child =
        right < heap.length && (heap[right] as QueuedDeadline<A>).at < (heap[left] as QueuedDeadline<A>).at
          ? right
          : left;
      const smaller = heap[child] as QueuedDeadline<A>;
      if (entry.at <= smaller.at) break;
      heap[i] = smaller;
      smaller.index = i;
      i = child;
    }
    heap[i] = entry;
    entry.index = i;
  }
}

/** One scheduled deadline of a DeadlineQueue: its handle, and its place in the heap. */
class QueuedDeadline<A> implements LongTimer {
  constructor(
    private readonly queue: DeadlineQueue<A>,
    readonly at: number,
    readonly arg: A,
    public index: number,
  ) {}

  cancel(): void {
    this.queue.remove(this);
  }
}

function runDeadlines(queue: { run(): void }): void {
  queue.run();
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
