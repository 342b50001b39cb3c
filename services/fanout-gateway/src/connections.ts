import type { ConnectLog, Directory, StreamPosition } from '@ripple/registry';
import type { Logger } from '@ripple/telemetry';
import type { GatewayMetrics } from './metrics.js';

/** Something that holds subscriptions and can be told to go away (a WebSocket or SSE session). */
export interface Connection {
  readonly id: string;
  readonly userId: string;
  /** The channels it reads (for the registry heartbeat). */
  channels(): string[];
  /** Sends the reconnect notice and closes (drain). */
  moveAway(): void;
  /** Ends one subscription at once and tells the client why (the `unsubscribed` frame). */
  revoke(channel: string, code: string, message: string): Promise<void>;
}

export type PresenceChange = 'online' | 'offline';

/** Users `Connections.reinstate` registers again, or connections `releaseHandedOver` releases, at once (pipelined round trips). */
const REGISTRY_CHUNK = 256;

/** The user's own channel as a connection joins it on connect. */
export interface OwnChannel {
  readonly channel: string;
  /** True when the node has no other subscriber of it (it becomes a holder in the registry). */
  readonly hold: boolean;
}

/**
 * This node's live connections: registers them for presence, tells when a user comes online or
 * goes offline, and provides what the registry heartbeat renews.
 */
export class Connections {
  private readonly open = new Map<string, Connection>();
  /** Presence changes not yet published, in the order they happened. */
  private presence: { change: PresenceChange; connection: Connection }[] = [];
  private publishing: Promise<void> | undefined;
  /** Set by {@link handOver}: closing connections keep their registry entries until {@link releaseHandedOver}. */
  private handingOver = false;
  private readonly handed: Connection[] = [];
  /** By connection id: its registration by {@link reinstate} in flight. */
  private readonly reinstating = new Map<string, Promise<boolean>>();

  /**
   * `connects` registers a connection (node roster, presence) with its own channel in one go, and
   * releases it (roster, presence) in one round trip when it closes; `publish` sends a batch of presence changes (in order); it is called with one batch at a time,
   * off the connect path: a connection does not wait for its presence event to reach Kafka.
   */
  constructor(
    private readonly nodeId: string,
    private readonly connects: ConnectLog,
    private readonly metrics: GatewayMetrics,
    private readonly logger: Logger,
    private readonly publish: (changes: readonly { change: PresenceChange; connection: Connection }[]) => Promise<void>,
  ) {}

  get size(): number {
    return this.open.size;
  }

  all(): Connection[] {
    return [...this.open.values()];
  }

  /**
   * Registers `connection` (roster, presence; `own.channel`'s holder when `own.hold`) and resolves
   * with its own channel's position, read after the registration (ConnectLog).
   */
  async add(connection: Connection, own: OwnChannel): Promise<StreamPosition> {
    this.open.set(connection.id, connection);
    const { first, position } = await this.connects.open({
      nodeId: this.nodeId,
      userId: connection.userId,
      connectionId: connection.id,
      channel: own.channel,
      holdChannel: own.hold,
    });
    if (first) this.changed('online', connection);
    return position;
  }

  /**
   * The node is draining: from now on a closed connection is forgotten here only, its roster and
   * presence entries kept, no `presence.offline` published, until {@link releaseHandedOver}. Its
   * user is moving to another node, where the presence entry still here makes the new connection
   * not the first (no `presence.online` either): a rolling deploy does not flap every user's
   * presence, and its reconnect storm carries no presence events.
   */
  handOver(): void {
    this.handingOver = true;
  }

  /** Connections closed since {@link handOver} whose registry entries are kept for now. */
  get handedOver(): number {
    return this.handed.length;
  }

  /**
   * Releases the connections closed since {@link handOver} as a close would (roster, presence),
   * and publishes `presence.offline` for each user left with no live connection anywhere (one who
   * did not reconnect to another node meanwhile, or whose every node is draining). Ends the
   * hand-over: a connection that closes later (its set-up ended late) is released at once.
   * Resolves with how many connections were released.
   */
  async releaseHandedOver(): Promise<number> {
    this.handingOver = false;
    const handed = this.handed.splice(0);
    for (let i = 0; i < handed.length; i += REGISTRY_CHUNK) {
      await Promise.all(handed.slice(i, i + REGISTRY_CHUNK).map((c) => this.unregister(c)));
    }
    return handed.length;
  }

  /** Forgets a closed connection (roster, presence) once, however often it is called. */
  async remove(connection: Connection): Promise<void> {
    if (!this.open.delete(connection.id)) return;
    if (this.handingOver) {
      this.handed.push(connection);
      return;
    }
    await this.unregister(connection);
  }

  /** Removes a connection that closed from the roster and presence; `presence.offline` when it was the user's last. */
  private async unregister(connection: Connection): Promise<void> {
    // Registered again by `reinstate` right now (on another Redis connection): released after
    // that, or its presence entry would outlive it and its user be announced online after offline.
    await this.reinstating.get(connection.id)?.catch(() => undefined);
    const last = await this.connects.close({
      nodeId: this.nodeId,
      userId: connection.userId,
      connectionId: connection.id,
    });
    if (last) this.changed('offline', connection);
  }

  /**
   * A peer claimed this node as dead while it was alive, removed its connections from presence and
   * announced their users offline: registers each open connection's presence again
   * (`presence.connect`, as `Directory.connect`) and publishes `presence.online` for each user
   * whose live connections (`presence.connectionsOf`) are then all on this node, i.e. who had none
   * elsewhere. Per user, not per connection: the upkeep's directory refresh may have renewed some
   * of a user's connections here already, and then no single one is the user's only one.
   * Resolves with how many users were announced online again.
   */
  async reinstate(presence: Pick<Directory, 'connect' | 'connectionsOf'>): Promise<number> {
    const byUser = new Map<string, Connection[]>();
    for (const c of this.open.values()) byUser.set(c.userId, [...(byUser.get(c.userId) ?? []), c]);
    const users = [...byUser];
    let announced = 0;
    for (let i = 0; i < users.length; i += REGISTRY_CHUNK) {
      const chunk = users.slice(i, i + REGISTRY_CHUNK);
      const online = await Promise.all(
        chunk.map(([userId, connections]) => this.reconnect(presence, userId, connections)),
      );
      chunk.forEach(([, connections], j) => {
        const connection = connections.find((c) => this.open.has(c.id));
        if (!online[j] || !connection) return;
        this.changed('online', connection);
        announced++;
      });
    }
    return announced;
  }

  /** Registers `connections` of `userId` again; resolves true when the user has live ones, all here. */
  private async reconnect(
    presence: Pick<Directory, 'connect' | 'connectionsOf'>,
    userId: string,
    connections: readonly Connection[],
  ): Promise<boolean> {
    // A connection closed since the list was taken is not registered again.
    const still = connections.filter((c) => this.open.has(c.id));
    await Promise.all(
      still.map(async (connection) => {
        const connecting = presence.connect(userId, connection.id);
        this.reinstating.set(connection.id, connecting);
        try {
          await connecting;
        } finally {
          this.reinstating.delete(connection.id);
        }
      }),
    );
    const live = await presence.connectionsOf(userId);
    const here = new Set(still.map((c) => c.id));
    return live.length > 0 && live.every((id) => here.has(id));
  }

  /** Resolves when every presence change so far was published (or failed and was logged). */
  async settled(): Promise<void> {
    while (this.publishing) await this.publishing;
  }

  private changed(change: PresenceChange, connection: Connection): void {
    this.metrics.presenceChanges.inc({ change });
    this.presence.push({ change, connection });
    this.publishing ??= this.drainPresence();
  }

  /** Publishes queued changes a batch at a time, one batch in flight: in order, never blocking a connect. */
  private async drainPresence(): Promise<void> {
    while (this.presence.length > 0) {
      const batch = this.presence;
      this.presence = [];
      await this.publish(batch).catch((err: unknown) =>
        this.logger.warn({ err, changes: batch.length }, 'could not publish presence changes'),
      );
    }
    this.publishing = undefined;
  }

  /** What this node holds, for the registry heartbeat. */
  holdings(channels: readonly string[]) {
    return {
      channels,
      connections: this.all().map((c) => ({ userId: c.userId, connectionId: c.id })),
    };
  }
}
