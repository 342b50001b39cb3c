import type { RelayProgressListener } from './relay.js';

export interface BacklogShedderOptions {
  /**
   * The bound, in ms: writes are refused once the oldest row the relay is publishing is older than
   * this while the relay falls behind, and taken again once it is no older than half of it; 0:
   * never refuse. Also how long the relay may go without progress and still count as publishing.
   */
  readonly maxAgeMs: number;
  /** The clock, epoch ms (tests inject one); rows' `createdAt` is compared with it. */
  readonly now?: () => number;
}

/**
 * Decides when a service should refuse writes because its outbox relay cannot keep up
 * (`shouldShed`), from what the relay reports (`RelayProgressListener`), with no query of its own.
 *
 * The rule, with M = `maxAgeMs` and the *lag* = now − `createdAt` of the oldest row of the batch
 * the relay is publishing (0 once a read found no rows):
 * - never while the relay does not publish: not started, its last batch failed (Kafka or the
 *   database away: the outbox exists to take writes then), or no batch acknowledged and no empty
 *   read for M (a send that hangs on a broker that stopped answering, before kafkajs gives up);
 * - start when the lag is over M *and the relay falls behind*: over the last window of at least
 *   M/2, the rows it went through were written over less time than the window took (the lag
 *   grows). A relay catching up on a backlog that built while Kafka was away goes through it
 *   faster than real time, so its lag falls and writes are not refused;
 * - stop once the lag is M/2 or less (hysteresis). Past capacity the lag keeps growing while
 *   writes are refused, until the relay reaches the rows written before: so in practice it stops
 *   when the relay has caught up.
 */
export class BacklogShedder implements RelayProgressListener {
  private readonly now: () => number;
  private readonly windowMs: number;
  /** `createdAt` of the oldest row of the batch being published, epoch ms; undefined when none. */
  private oldest: number | undefined;
  /** When the relay last made progress (a batch acknowledged, a read that found nothing). */
  private progressAt: number | undefined;
  private failing = false;
  /** Start of the window the lag's trend is measured over. */
  private anchor: { at: number; oldest: number } | undefined;
  /** Whether the lag grew over the last complete window. */
  private behind = false;
  private shedding = false;

  constructor(private readonly opts: BacklogShedderOptions) {
    this.now = opts.now ?? Date.now;
    this.windowMs = opts.maxAgeMs / 2;
  }

  sending(oldestCreatedAt: number): void {
    const at = this.now();
    this.oldest = oldestCreatedAt;
    if (this.anchor === undefined) {
      this.anchor = { at, oldest: oldestCreatedAt };
    } else if (at - this.anchor.at >= this.windowMs) {
      this.behind = oldestCreatedAt - this.anchor.oldest < at - this.anchor.at;
      this.anchor = { at, oldest: oldestCreatedAt };
    }
  }

  acknowledged(): void {
    this.progressAt = this.now();
    this.failing = false;
  }

  idle(): void {
    this.progressAt = this.now();
    this.failing = false;
    this.oldest = undefined;
    this.anchor = undefined;
    this.behind = false;
  }

  failed(): void {
    this.failing = true;
    // A retried batch makes no headway through its rows: that is an outage, not a trend.
    this.anchor = undefined;
    this.behind = false;
  }

  /**
   * Whether a write that adds outbox rows should be refused now (see the class). Cheap: a clock
   * reading and a few comparisons, no I/O; call it per request.
   */
  shouldShed(): boolean {
    const max = this.opts.maxAgeMs;
    if (max <= 0) return false;
    const now = this.now();
    const publishing = !this.failing && this.progressAt !== undefined && now - this.progressAt <= max;
    if (!publishing) {
      this.shedding = false;
      return false;
    }
    const lag = this.oldest === undefined ? 0 : now - this.oldest;
    this.shedding = this.shedding ? lag > max / 2 : lag > max && this.behind;
    return this.shedding;
  }
}
