import type { NodeRoster, ServedConnection } from '@ripple/registry';
import { repeat } from './timers.js';
import type { Repeating } from './timers.js';

export interface RegistryHeartbeatDeps {
  readonly nodeId: string;
  /** How often the node renews its registry entries (ms, REGISTRY_HEARTBEAT_MS). */
  readonly intervalMs: number;
  /** How long one renewal keeps them (ms): routers skip a node whose lease lapsed. */
  readonly leaseMs: number;
  /**
   * Renews the node, its channels and a share of its presence entries in the directory;
   * `refilled` when the store had lost them (the directory wrote them all).
   */
  readonly refreshDirectory: () => Promise<{ refilled: boolean }>;
  /** The node's connections now (the roster's list, written whole when the store lost it). */
  readonly connections: () => readonly ServedConnection[];
  readonly roster: Pick<NodeRoster, 'renew'>;
  /** Reads every held channel back from history (frames routed elsewhere while this node lapsed). */
  readonly catchUp: () => Promise<void>;
  /** Claims the nodes whose lease ran out and announces their users offline. */
  readonly sweep: () => Promise<unknown>;
  /** A renewal that failed (the next one goes ahead). */
  readonly onError: (err: unknown) => void;
  /** The clock (ms). */
  readonly now?: () => number;
}

/**
 * A gateway node's registry heartbeat: renews the node's directory entries and its roster lease,
 * catches up from history when a lapse may have cost it frames, and reaps dead nodes.
 */
export class RegistryHeartbeat {
  private readonly now: () => number;
  private loop: Repeating | undefined;
  // When the last renewal that landed started (ms); a catch-up is owed from a renewal that lands
  // a lease or more after it (or a failed one) until one succeeds.
  private renewedAt: number | undefined;
  private catchUpOwed = false;

  constructor(private readonly deps: RegistryHeartbeatDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Renews once now (rejects when that fails), then every `intervalMs` until `stop`. */
  async start(): Promise<void> {
    await this.beat();
    this.loop = repeat(() => this.beat(), this.deps.intervalMs, this.deps.onError, this.now);
  }

  /** A catch-up failed elsewhere (the node bus): the next renewal tries again. */
  oweCatchUp(): void {
    this.catchUpOwed = true;
  }

  /** Stops renewing; resolves once the renewal in flight, if any, ended. */
  async stop(): Promise<void> {
    await this.loop?.stop();
  }

  private async beat(): Promise<void> {
    const { deps } = this;
    const startedAt = this.now();
    const { refilled } = await deps.refreshDirectory();
    // `serve` and `release` keep the roster's list of this node's connections; it is written whole
    // only when Redis lost it (and at start). A fresh list then: a connection that opened while the
    // directory was being refreshed (and that `serve` recorded already) must not be dropped.
    await deps.roster.renew(deps.nodeId, refilled ? deps.connections() : undefined);
    // Other routers skip a node whose lease lapsed and append only to history: read it back.
    if (this.renewedAt !== undefined && this.now() - this.renewedAt >= deps.leaseMs) this.catchUpOwed = true;
    this.renewedAt = startedAt;
    if (this.catchUpOwed) {
      await deps.catchUp();
      this.catchUpOwed = false;
    }
    await deps.sweep();
  }
}
