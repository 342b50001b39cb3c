import { RippleError } from '@ripple/errors';
import { verifySubscriptionToken } from './tokens.js';
import type { JwtSecret } from './tokens.js';

/** The channel namespaces of DESIGN.md §4. */
export type ChannelKind = 'user' | 'feed' | 'post' | 'creator' | 'chat';

export interface ParsedChannel {
  readonly kind: ChannelKind;
  readonly id: string;
}

const CHANNEL = /^(user|feed|post|creator|chat):([A-Za-z0-9_-]{1,128})$/;

export function parseChannel(channel: string): ParsedChannel | undefined {
  const match = CHANNEL.exec(channel);
  if (!match) return undefined;
  return { kind: match[1] as ChannelKind, id: match[2] as string };
}

/** Where the gateway learns what a subscription token cannot say by itself. */
export interface MembershipMarks {
  /** When `userId` last left (or was removed from) chat room `roomId`, ms since the epoch; undefined if never. */
  leftAt(roomId: string, userId: string): Promise<number | undefined>;
}

/**
 * Decides whether `userId` may subscribe to `channel`.
 * `user:` and `feed:` are private to their user; `post:` and `creator:` are open to any authenticated user;
 * `chat:` needs a subscription token that chat-service signed for this user and room, after the
 * user last left that room (`marks`): a token signed before a removal proves nothing any more.
 */
export async function authorizeChannel(
  secret: JwtSecret,
  userId: string,
  channel: string,
  subscriptionToken: string | undefined,
  marks?: MembershipMarks,
): Promise<ParsedChannel> {
  const parsed = parseChannel(channel);
  if (!parsed) {
    throw new RippleError(
      'GW_CHANNEL_INVALID',
      `"${channel}" is not a channel name (user:, feed:, post:, creator:, chat:)`,
      {
        status: 400,
      },
    );
  }
  switch (parsed.kind) {
    case 'user':
    case 'feed':
      if (parsed.id !== userId) {
        throw new RippleError('GW_SUBSCRIBE_FORBIDDEN', `a ${parsed.kind} channel is readable by its user only`, {
          status: 403,
        });
      }
      return parsed;
    case 'post':
    case 'creator':
      return parsed;
    case 'chat':
      if (subscriptionToken === undefined) {
        throw new RippleError('GW_SUBSCRIBE_FORBIDDEN', 'chat channels need a subscription token from chat-service', {
          status: 403,
        });
      }
      {
        const { issuedAtMs } = await verifySubscriptionToken(secret, subscriptionToken, userId, channel);
        const leftAt = await marks?.leftAt(parsed.id, userId);
        // Same millisecond counts as before: refusing is the safe side, a fresh token fixes it.
        if (leftAt !== undefined && issuedAtMs <= leftAt) {
          throw new RippleError('GW_SUBSCRIBE_FORBIDDEN', `the subscription token for ${channel} predates leaving it`, {
            status: 403,
          });
        }
      }
      return parsed;
  }
}
