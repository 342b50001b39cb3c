import type { RelayProgressListener } from './relay.js';

export interface BacklogShedderOptions {
  /**
   * The bound, in ms: writes are refused once a row written now would wait longer than this for
   * the relay to reach it, while the relay falls behind, and taken again once it would wait half
   * of it or less; 0: never refuse. Also how long the relay may go without progress and still
   * count as publishing.
   */
  readonly maxWaitMs: number;
  /** The clock, epoch ms (tests inject one); rows' `createdAt` is compared with it. */
  readonly now?: () => number;
}

/**
 * Decides when a service should refuse writes because its outbox relay cannot keep up
 * (`shouldShed`), from what the relay reports (`RelayProgressListener`), with no query of its own.
 *
 * Read from the relay's batches: its *lag* (now − `createdAt` of the oldest row of the batch it is
 * publishing; 0 once a read found no rows) and its *pace* (over the last window of at least M/2,
 * M = `maxWaitMs`: how many seconds of writes it went through per second; under 1 it falls behind).
 * A row written now waits about lag ÷ pace before the relay reaches it (the rows ahead of it were
 * written over the last `lag` seconds, and the relay goes through `pace` seconds of them a
 * second). The rule:
 * - never while the relay does not publish: not started, its last batch failed (Kafka or the
 *   database away: the outbox exists to take writes then), or no batch acknowledged and no empty
 *   read for M (a send that hangs on a broker that stopped answering, before kafkajs gives up);
 *   the pace is measured afresh after a failure or such a hang, so the outage does not count as
 *   the relay falling behind; an empty read ends the lag but keeps the pace, so writes taken
 *   again after refusals are held to it at once (before the first window there is no pace, and
 *   writes are taken);
 * - start when the relay falls behind (pace under 1) and lag ÷ pace is over M. A relay catching up
 *   on a backlog that built while Kafka was away goes faster than real time (pace over 1), so
 *   writes are not refused then, however old its oldest rows;
 * - stop once lag ÷ pace is M/2 or less (hysteresis; pace taken as at most 1). Past capacity the
 *   lag keeps growing while writes are refused, until the relay reaches the rows written before:
 *   in practice it stops once the relay has caught up.
 */
export class BacklogShedder implements RelayProgressListener {
  private readonly now: () => number;
  private readonly windowMs: number;
  /** `createdAt` of the oldest row of the batch being published, epoch ms; undefined when none. */
  private oldest: number | undefined;
  /** When the relay last made progress (a batch acknowledged, a read that found nothing). */
  private progressAt: number | undefined;
  private failing = false;
  /** Start of the window the pace is measured over. */
  private anchor: { at: number; oldest: number } | undefined;
  /** Seconds of writes the relay went through per second over the last complete window. */
  private pace: number | undefined;
  private shedding = false;

  constructor(private readonly opts: BacklogShedderOptions) {
    this.now = opts.now ?? Date.now;
    this.windowMs = opts.maxWaitMs / 2;
  }

  sending(oldestCreatedAt: number): void {
    const at = this.now();
    this.oldest = oldestCreatedAt;
    if (this.anchor === undefined) {
      this.anchor = { at, oldest: oldestCreatedAt };
    } else if (at - this.anchor.at >= this.windowMs) {
      this.pace = (oldestCreatedAt - this.anchor.oldest) / (at - this.anchor.at);
      this.anchor = { at, oldest: oldestCreatedAt };
    }
  }

  acknowledged(): void {
    const at = this.now();
    // A send that took longer than the bound hung (a broker that stopped answering, then came
    // back): like a failure, an outage and not the relay's pace; the catch-up after it is measured
    // from here.
    if (this.progressAt !== undefined && at - this.progressAt > this.opts.maxWaitMs) {
      this.anchor = undefined;
      this.pace = undefined;
    }
    this.progressAt = at;
    this.failing = false;
  }

  idle(): void {
    this.progressAt = this.now();
    this.failing = false;
    this.oldest = undefined;
    this.anchor = undefined;
    // The pace stays: an empty read ends the lag, not what the relay was measured to manage. A
    // relay that emptied the outbox because writes were refused reads nothing for a moment, and
    // forgetting its pace then took writes for a whole window as if it kept up (a row taken then
    // waited window ÷ pace: 4.5 s at a tenth of the offered rate, bound 1 s; validator F5).
  }

  failed(): void {
    this.failing = true;
    // A retried batch makes no headway through its rows: that is an outage, not a trend.
    this.anchor = undefined;
    this.pace = undefined;
  }

  /**
   * Whether a write that adds outbox rows should be refused now (see the class). Cheap: a clock
   * reading and a few comparisons, no I/O; call it per request.
   */
  shouldShed(): boolean {
    const max = this.opts.maxWaitMs;
    if (max <= 0) return false;
    const now = this.now();
    const publishing = !this.failing && this.progressAt !== undefined && now - this.progressAt <= max;
    if (!publishing || this.oldest === undefined) {
      this.shedding = false;
      return false;
    }
    const lag = now - this.oldest;
    const pace = this.pace ?? 1;
    // How long a row written now waits for the relay to reach it.
    const wait = pace <= 0 ? Infinity : lag / Math.min(pace, 1);
    this.shedding = this.shedding ? wait > max / 2 : pace < 1 && wait > max;
    return this.shedding;
  }
}
