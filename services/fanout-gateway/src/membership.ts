import type { MembershipMarks } from '@ripple/auth';
import type { AnyEvent } from '@ripple/events';
import type { Departures } from '@ripple/registry';
import type { Logger } from '@ripple/telemetry';
import type { Connection } from './connections.js';
import type { ChannelFrame } from './hub.js';

/** The code of the `unsubscribed` frame that ends a subscription the server took back. */
export const SUBSCRIPTION_REVOKED = 'GW_SUBSCRIPTION_REVOKED';

/** The `unsubscribed` frame (docs/protocol.md): the server ended the subscription, `code` says why. */
export function unsubscribedFrame(
  channel: string,
  code: string,
  message: string,
): { op: 'unsubscribed' } & Record<string, unknown> {
  return { op: 'unsubscribed', channel, code, message };
}

export interface MembershipDeps {
  readonly departures: Departures;
  /**
   * Since when the store that keeps departures has kept its data (Directory.dataSince: the same
   * Redis); undefined when it just lost it.
   */
  readonly storeSince: () => Promise<number | undefined>;
  /** This node's live connections. */
  readonly connections: () => readonly Connection[];
  readonly logger: Logger;
  /** Counts each subscription ended here. */
  readonly onRevoked?: () => void;
}

const LEFT = '"type":"chat.member.left"';

/**
 * Chat room membership as the gateway sees it, without a database: chat-service's
 * `chat.member.left` events. The router records each departure before it routes the event, so
 * from then on a subscription token signed before it is refused (`leftAt`, for authorizeChannel);
 * and every node, once it handed the event to the room's subscribers, ends the leaving user's
 * subscriptions to that room, so nothing later in the room reaches them.
 */
export class Membership implements MembershipMarks {
  constructor(private readonly deps: MembershipDeps) {}

  /**
   * When the user last left the room — or, when that is later, since when departures are known at
   * all: after Redis lost its data a departure may be gone, so a token signed before the loss
   * proves nothing (fail closed; the client fetches a fresh subscription token).
   */
  async leftAt(roomId: string, userId: string): Promise<number | undefined> {
    const [left, since] = await Promise.all([this.deps.departures.leftAt(roomId, userId), this.deps.storeSince()]);
    const known = since ?? Date.now();
    return left === undefined || left < known ? known : left;
  }

  /** Router hook, before the event is routed: a failure fails routing, so the event is retried. */
  async record(event: AnyEvent): Promise<void> {
    if (event.type !== 'chat.member.left') return;
    const at = Date.parse(event.data.at);
    await this.deps.departures.markLeft(event.data.roomId, event.data.userId, Number.isNaN(at) ? Date.now() : at);
  }

  /**
   * Hub hook: `frame` was just handed to this node's subscribers of its channel, in offset order.
   * When it says a user left a room, that user's subscriptions to the room end here and now, before
   * the hub hands out the room's next frame.
   */
  observe(frame: ChannelFrame): void {
    if (!frame.channel.startsWith('chat:') || !frame.frame.includes(LEFT)) return;
    const userId = leavingUser(frame.frame);
    if (userId === undefined) return;
    for (const connection of this.deps.connections()) {
      if (connection.userId !== userId || !connection.channels().includes(frame.channel)) continue;
      this.deps.onRevoked?.();
      connection
        .revoke(frame.channel, SUBSCRIPTION_REVOKED, `${userId} is no longer a member of ${frame.channel}`)
        .catch((err: unknown) =>
          this.deps.logger.warn({ err, channel: frame.channel }, 'could not release a revoked subscription'),
        );
    }
  }
}

function leavingUser(frameJson: string): string | undefined {
  try {
    const { event } = JSON.parse(frameJson) as { event?: { type?: unknown; data?: { userId?: unknown } } };
    return event?.type === 'chat.member.left' && typeof event.data?.userId === 'string' ? event.data.userId : undefined;
  } catch {
    return undefined;
  }
}
