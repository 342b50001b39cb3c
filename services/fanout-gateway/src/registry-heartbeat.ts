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
  readonly roster: Pick<NodeRoster, 'renew' | 'reaping'>;
  /** Reads every held channel back from history (frames routed elsewhere while this node lapsed). */
  readonly catchUp: () => Promise<void>;
  /**
   * A peer claimed this node as dead while it was alive (it stalled past its lease and the grace):
   * the reaper announced its users offline and removed their presence. Registers the node's
   * connections' presence again and announces online the users it serves.
   */
  readonly reinstate: () => Promise<void>;
  /** Claims the nodes whose lease ran out and announces their users offline. */
  readonly sweep: () => Promise<unknown>;
  /** A renewal that failed (the next one goes ahead). */
  readonly onError: (err: unknown) => void;
  /** The clock (ms). */
  readonly now?: () => number;
}

/**
 * A gateway node's registry heartbeat, two loops of `intervalMs` each. The **lease** loop renews
 * only the node's roster lease, one small request (give its roster a Redis connection of its own):
 * whether other nodes reap this one must not wait for bulk work. The **upkeep** loop renews the
 * node's directory entries (its channels: thousands of keys), writes the roster's list of its
 * connections whole when the store lost it, catches up from history when a lapse of those entries
 * may have cost it frames, and reaps dead nodes (announcing a big one's users takes seconds).
 * In one loop, a renewal waited behind all of that: under a reconnect storm a live node's lease
 * ran out and a peer reaped its connections.
 */
export class RegistryHeartbeat {
  private readonly now: () => number;
  private loops: Repeating[] = [];
  // When the last directory refresh that landed started (ms); a catch-up is owed from a refresh
  // that lands a lease or more after it (or a failed one) until one succeeds.
  private refreshedAt: number | undefined;
  private catchUpOwed = false;
  // Set when a lease renewal found the node no longer listed (a peer claimed it), until the upkeep
  // registered its connections again.
  private reinstateOwed = false;

  constructor(private readonly deps: RegistryHeartbeatDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Runs the upkeep once now (rejects when that fails), then both loops until `stop`. */
  async start(): Promise<void> {
    await this.upkeep();
    const { intervalMs, onError, nodeId, roster } = this.deps;
    this.loops = [
      repeat(
        async () => {
          if (!(await roster.renew(nodeId))) this.reinstateOwed = true;
        },
        intervalMs,
        onError,
        this.now,
      ),
      repeat(() => this.upkeep(), intervalMs, onError, this.now),
    ];
  }

  /** A catch-up failed elsewhere (the node bus): the next upkeep tries again. */
  oweCatchUp(): void {
    this.catchUpOwed = true;
  }

  /** Stops both loops; resolves once the runs in flight, if any, ended. */
  async stop(): Promise<void> {
    await Promise.all(this.loops.map((loop) => loop.stop()));
  }

  private async upkeep(): Promise<void> {
    const { deps } = this;
    const startedAt = this.now();
    const { refilled } = await deps.refreshDirectory();
    const claimed = this.reinstateOwed;
    // `serve` and `release` keep the roster's list of this node's connections; it is written whole
    // only when Redis lost it (and at start), or a peer claimed the node and took it. A fresh list
    // then: a connection that opened while the directory was being refreshed (and that `serve`
    // recorded already) must not be dropped.
    if (refilled || claimed) await deps.roster.renew(deps.nodeId, deps.connections());
    // Claimed, not lost with the rest of Redis: the reaper announced its users offline. Once it is
    // done (a later upkeep, while it is not): its removals must not land after the additions.
    if (claimed && !refilled && !(await deps.roster.reaping(deps.nodeId))) {
      await deps.reinstate();
      this.reinstateOwed = false;
    } else if (claimed && refilled) this.reinstateOwed = false;
    // Other routers skip a node whose directory lease lapsed and append only to history: read it back.
    if (this.refreshedAt !== undefined && this.now() - this.refreshedAt >= deps.leaseMs) this.catchUpOwed = true;
    this.refreshedAt = startedAt;
    if (this.catchUpOwed) {
      await deps.catchUp();
      this.catchUpOwed = false;
    }
    await deps.sweep();
  }
}
