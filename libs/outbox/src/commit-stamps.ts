export interface CommitStampsOptions {
  /** Most entries held; stamping beyond it drops the oldest (counted in `dropped`). */
  readonly maxEntries: number;
  /** An entry older than this (ms) is dropped (counted in `dropped`) and no longer answered. */
  readonly maxAgeMs: number;
  /** The clock, in ms; monotonic (default `performance.now`). */
  readonly now?: () => number;
}

/**
 * When this process's commits of outbox events returned, by CloudEvents id, until the relay
 * publishes them: `stamp` after the commit, `take` at the broker's acknowledgement. Bounded in
 * count and age, because an entry may never be taken (another process's relay published the row,
 * or it is still unsent when it ages out): those are dropped, oldest first, and counted.
 *
 * Entries sit in a Map in stamping order, which is also time order (the clock is monotonic), so
 * the oldest are at its front: a sweep removes from the front only, O(1) per dropped entry.
 */
export class CommitStamps {
  private readonly entries = new Map<string, number>();
  private readonly maxEntries: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  /** Entries dropped by the count or age bound (never taken). */
  dropped = 0;

  constructor(opts: CommitStampsOptions) {
    this.maxEntries = opts.maxEntries;
    this.maxAgeMs = opts.maxAgeMs;
    this.now = opts.now ?? (() => performance.now());
  }

  /** Entries held now. */
  get size(): number {
    return this.entries.size;
  }

  /** Records `eventIds` as committed now. An id already held keeps its first stamp. */
  stamp(eventIds: Iterable<string>): void {
    const at = this.now();
    this.sweep(at);
    for (const id of eventIds) {
      if (this.entries.has(id)) continue;
      if (this.entries.size >= this.maxEntries) this.dropOldest();
      this.entries.set(id, at);
    }
  }

  /**
   * When `eventId` was stamped (the clock's ms), removing it; `undefined` when it was not stamped
   * in this process, was taken already, or is older than `maxAgeMs`.
   */
  take(eventId: string): number | undefined {
    const at = this.entries.get(eventId);
    if (at === undefined) return undefined;
    this.entries.delete(eventId);
    if (this.now() - at > this.maxAgeMs) {
      this.dropped++;
      return undefined;
    }
    return at;
  }

  private sweep(now: number): void {
    for (const [, at] of this.entries) {
      if (now - at <= this.maxAgeMs) return;
      this.dropOldest();
    }
  }

  private dropOldest(): void {
    const oldest = this.entries.keys().next();
    if (oldest.done === true) return;
    this.entries.delete(oldest.value);
    this.dropped++;
  }
}
