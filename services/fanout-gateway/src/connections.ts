import type { Directory } from '@ripple/registry';
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

/**
 * This node's live connections: registers them for presence, tells when a user comes online or
 * goes offline, and provides what the registry heartbeat renews.
 */
export class Connections {
  private readonly open = new Map<string, Connection>();

  constructor(
    private readonly directory: Directory,
    private readonly metrics: GatewayMetrics,
    private readonly logger: Logger,
    private readonly onPresence: (change: PresenceChange, connection: Connection) => Promise<void>,
    /** Runs before a connection is registered for presence (the node roster records it). */
    private readonly beforeAdd: (connection: Connection) => Promise<void> = () => Promise.resolve(),
  ) {}

  get size(): number {
    return this.open.size;
  }

  all(): Connection[] {
    return [...this.open.values()];
  }

  async add(connection: Connection): Promise<void> {
    this.open.set(connection.id, connection);
    await this.beforeAdd(connection);
    if (await this.directory.connect(connection.userId, connection.id)) await this.changed('online', connection);
  }

  async remove(connection: Connection): Promise<void> {
    if (!this.open.delete(connection.id)) return;
    if (await this.directory.disconnect(connection.userId, connection.id)) await this.changed('offline', connection);
  }

  private async changed(change: PresenceChange, connection: Connection): Promise<void> {
    this.metrics.presenceChanges.inc({ change });
    await this.onPresence(change, connection).catch((err: unknown) =>
      this.logger.warn({ err, change, userId: connection.userId }, 'could not publish a presence change'),
    );
  }

  /** What this node holds, for the registry heartbeat. */
  holdings(channels: readonly string[]) {
    return {
      channels,
      connections: this.all().map((c) => ({ userId: c.userId, connectionId: c.id })),
    };
  }
}
