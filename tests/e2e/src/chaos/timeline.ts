import { percentile } from './ledger.js';

/** What happened to one client's connection, as the chaos fleet sees it from outside the SDK. */
export type Mark =
  | 'lost' // the SDK reported `disconnected` (first time since it was connected)
  | 'attempt' // the SDK constructed a new WebSocket (its backoff timer fired, token fetched)
  | 'accepted' // the proxy accepted the connection
  | 'forwarded' // the proxy's connection to a gateway is up
  | 'open' // the WebSocket upgrade completed (TCP through the proxy, HTTP 101)
  | 'welcome' // the gateway's `welcome` frame arrived (registered, own channel joined)
  | 'ack' // the re-subscription's `ack` arrived
  | 'close'; // the socket closed (detail: the close code)

interface Entry {
  readonly at: number;
  readonly mark: Mark;
  readonly detail?: string | number;
}

/** One recovery taken apart: how long each step from losing the connection to the `ack` took, ms. */
export interface RecoveryPhases {
  readonly client: string;
  /** Losing the connection → the last (successful) attempt began: backoff and failed attempts. */
  readonly toAttempt: number;
  /** That attempt → its upgrade completed. */
  readonly toOpen: number;
  /** Upgrade → `welcome`: the gateway's set-up. */
  readonly toWelcome: number;
  /** `welcome` → the channel's `ack`. */
  readonly toAck: number;
  /** Attempts that failed before the successful one. */
  readonly failedAttempts: number;
  /** Close codes of the failed attempts and of the loss itself. */
  readonly closes: readonly (string | number)[];
  readonly totalMs: number;
}

/**
 * Per-client connection timelines of a chaos fleet, to explain slow recoveries: for every
 * recovery, where its time went (backoff, upgrade, gateway set-up, re-subscription).
 */
export class Timelines {
  private readonly entries = new Map<string, Entry[]>();
  private readonly phases: RecoveryPhases[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  /**
   * Notes `mark` for `client`, now or `at` (epoch ms, for a step learnt late). A recovery ends
   * at the `ack` that follows a `lost`.
   */
  mark(client: string, mark: Mark, detail?: string | number, at = this.now()): void {
    let list = this.entries.get(client);
    if (!list) this.entries.set(client, (list = []));
    list.push({ at, mark, ...(detail !== undefined && { detail }) });
    if (mark === 'ack') this.settle(client, list);
  }

  /** Every recovery completed so far, taken apart. */
  recoveries(): readonly RecoveryPhases[] {
    return this.phases;
  }

  /** p50/p99 of each phase and the slowest recoveries, for a person reading the run. */
  summary(slowest = 5): string {
    if (this.phases.length === 0) return 'no recoveries';
    const keys = ['toAttempt', 'toOpen', 'toWelcome', 'toAck', 'failedAttempts', 'totalMs'] as const;
    const lines = keys.map((key) => {
      const values = this.phases.map((p) => p[key]);
      return `${key}: p50 ${percentile(values, 0.5)} p99 ${percentile(values, 0.99)} max ${Math.max(...values)}`;
    });
    const worst = [...this.phases].sort((a, b) => b.totalMs - a.totalMs).slice(0, slowest);
    return [
      `${this.phases.length} recoveries`,
      ...lines,
      ...worst.map((p) => `slow: ${JSON.stringify(p)} ${this.render(p.client)}`),
    ].join('\n');
  }

  /** One client's whole timeline, relative to its first mark (whose time it names). */
  render(client: string): string {
    const list = this.entries.get(client) ?? [];
    const t0 = list[0]?.at ?? 0;
    return (
      `${new Date(t0).toISOString()} ` +
      [...list]
        .sort((a, b) => a.at - b.at)
        .map((e) => `+${e.at - t0}:${e.mark}${e.detail === undefined ? '' : `(${e.detail})`}`)
        .join(' ')
    );
  }

  /** At an `ack`: when the list holds a `lost` not yet settled, records that recovery's phases. */
  private settle(client: string, list: Entry[]): void {
    const ack = list.length - 1;
    let lost = -1;
    for (let i = ack - 1; i >= 0; i--) {
      const mark = list[i]?.mark;
      if (mark === 'ack') return; // already settled (a second subscription's ack)
      if (mark === 'lost') {
        lost = i;
        break;
      }
    }
    if (lost < 0) return;
    // The close that made the SDK report the loss comes just before it.
    const window = list.slice(list[lost - 1]?.mark === 'close' ? lost - 1 : lost, ack + 1);
    const at = (mark: Mark): number => {
      for (let i = window.length - 1; i >= 0; i--) if (window[i]?.mark === mark) return window[i]?.at ?? NaN;
      return NaN;
    };
    const lostAt = list[lost]?.at ?? 0;
    const attempt = at('attempt');
    const open = at('open');
    const welcome = at('welcome');
    const ackAt = window[window.length - 1]?.at ?? 0;
    this.phases.push({
      client,
      toAttempt: attempt - lostAt,
      toOpen: open - attempt,
      toWelcome: welcome - open,
      toAck: ackAt - welcome,
      failedAttempts: Math.max(0, window.filter((e) => e.mark === 'attempt').length - 1),
      closes: window.filter((e) => e.mark === 'close').map((e) => e.detail ?? '?'),
      totalMs: ackAt - lostAt,
    });
  }
}
