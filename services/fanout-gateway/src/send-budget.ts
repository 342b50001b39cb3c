/** What the send budget needs of one connection's outbound queue (a WebSocket sink). */
export interface SendQueue {
  /** Bytes queued for the peer and not yet handed to the kernel (≥ 0). */
  queuedBytes(): number;
  /** Closes the connection as a slow consumer (4009); its bytes leave the budget. */
  evict(): void;
}

export interface SendBudgetOptions {
  /** Most bytes queued for sockets, all together, before routing waits (bytes, ≥ 1). */
  readonly limitBytes: number;
  /**
   * Longest a wait goes on without the total falling below its lowest so far in the wait (ms): past
   * it, every queue that has not drained at all for this long is evicted, then the largest of the
   * rest until the total is within the limit. Sockets that read, however slowly, keep the wait
   * going; a few that stopped reading end it.
   */
  readonly stallMs: number;
  /** How often a wait reads the queues again (ms; default 10): a write to the kernel is not announced. */
  readonly pollMs?: number;
  /**
   * Called by `admit` before it counts: hands over what transports hold back until the end of the
   * tick (ws.ts `flushWebSocketWrites`), so bytes queued earlier in the same tick are counted.
   */
  readonly beforeCount?: () => void;
  /** Clock (ms); default `Date.now`. */
  readonly now?: () => number;
  /** A wait ended, after `ms` (whether the queues drained or were evicted). */
  readonly onWaited?: (ms: number) => void;
  /** One queue was evicted for the budget. */
  readonly onEvicted?: () => void;
}

/**
 * The gateway-wide bound on bytes queued for sockets and not yet handed to the kernel (each
 * socket's own bound, WS_SEND_BUFFER_BYTES, does not bound their sum). Queues report what they hold
 * (`update`) when they queue or hand over bytes and leave with `release` when they close; `admit`
 * is awaited before a routed batch is written to sockets. A queue is counted at what it held when
 * it last reported, and read again whenever the budget decides (`admit`, each poll of a wait): the
 * kernel taking bytes is not an event, so a stale count only ever delays, never admits early.
 * Counts bytes per queue: a frame shared by many sockets counts once per socket that holds it.
 */
export class SendBudget {
  /** Each queue holding bytes: how many, and when they last fell (the peer read) or it was added. */
  private readonly queued = new Map<SendQueue, { bytes: number; drainedAt: number }>();
  private total = 0;
  private readonly waiters: Array<{ since: number; resolve: () => void }> = [];
  /** What the waiting callers want called while they wait (see `admit`). */
  private readonly keepAlives = new Set<() => void>();
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  /** During a wait: the lowest total seen, and when it was seen. */
  private lowest = 0;
  private fellAt = 0;

  constructor(private readonly opts: SendBudgetOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Bytes counted now (as last reported or read), summed over every queue. */
  get queuedBytes(): number {
    return this.total;
  }

  /** Queues holding bytes. */
  get queueCount(): number {
    return this.queued.size;
  }

  /** Records what `queue` holds now (call after it queued or handed over bytes). */
  update(queue: SendQueue): void {
    const bytes = Math.max(0, queue.queuedBytes());
    const entry = this.queued.get(queue);
    if (entry === undefined) {
      if (bytes === 0) return;
      this.queued.set(queue, { bytes, drainedAt: this.now() });
      this.total += bytes;
      return;
    }
    this.total += bytes - entry.bytes;
    if (bytes === 0) {
      this.queued.delete(queue);
      return;
    }
    if (bytes < entry.bytes) entry.drainedAt = this.now();
    entry.bytes = bytes;
  }

  /** Forgets `queue` (it closed): its bytes leave the budget. Safe to call more than once. */
  release(queue: SendQueue): void {
    const entry = this.queued.get(queue);
    if (entry === undefined) return;
    this.queued.delete(queue);
    this.total -= entry.bytes;
  }

  /**
   * Undefined when the queues hold at most the limit (go on at once); else a promise that resolves
   * once they do, or once the total stopped falling for `stallMs` and the largest queues were
   * evicted. Never rejects. `keepAlive` is called about every `pollMs` while waiting (e.g. a Kafka heartbeat).
   */
  admit(keepAlive?: () => void): Promise<void> | undefined {
    this.opts.beforeCount?.();
    if (this.refresh() <= this.opts.limitBytes) return undefined;
    return new Promise<void>((resolve) => {
      const now = this.now();
      if (this.waiters.length === 0) {
        this.lowest = this.total;
        this.fellAt = now;
      }
      this.waiters.push({ since: now, resolve });
      if (keepAlive) this.keepAlives.add(keepAlive);
      this.schedule();
    });
  }

  /** Reads every counted queue again; returns the total. */
  private refresh(): number {
    for (const queue of [...this.queued.keys()]) this.update(queue);
    return this.total;
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => this.poll(), this.opts.pollMs ?? 10);
  }

  private poll(): void {
    this.timer = undefined;
    if (this.waiters.length === 0) return;
    for (const keepAlive of this.keepAlives) keepAlive();
    const total = this.refresh();
    if (total < this.lowest) {
      this.lowest = total;
      this.fellAt = this.now();
    }
    if (total > this.opts.limitBytes && this.now() - this.fellAt >= this.opts.stallMs) this.evictStalled();
    if (this.total > this.opts.limitBytes) {
      this.schedule();
      return;
    }
    const now = this.now();
    const waiters = this.waiters.splice(0);
    this.keepAlives.clear();
    for (const { since, resolve } of waiters) {
      this.opts.onWaited?.(now - since);
      resolve();
    }
  }

  /**
   * At a stall: evicts every queue that has not drained at all for `stallMs` (a peer that stopped
   * reading), then, while the total is still over the limit, the largest of the rest. Evicting
   * only enough to get within the limit left the other peers that stopped reading to fill it
   * again, each costing every socket of the node one more stall.
   */
  private evictStalled(): void {
    const now = this.now();
    const largest = [...this.queued].sort((a, b) => b[1].bytes - a[1].bytes);
    for (const [queue, { drainedAt }] of largest) if (now - drainedAt >= this.opts.stallMs) this.evict(queue);
    for (const [queue] of largest) {
      if (this.total <= this.opts.limitBytes) return;
      if (this.queued.has(queue)) this.evict(queue);
    }
  }

  private evict(queue: SendQueue): void {
    this.opts.onEvicted?.();
    queue.evict();
    this.release(queue);
  }
}
