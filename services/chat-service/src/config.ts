import { Type } from '@sinclair/typebox';
import { domainServiceEnv } from '@ripple/service';

export const SERVICE_NAME = 'chat-service';

/** chat-service's environment (README "Configuration"): a domain service's, on port 3002, and its own. */
export const ChatEnv = Type.Composite([
  domainServiceEnv(SERVICE_NAME, 3002),
  Type.Object({
    /** Lifetime of a room subscription token (GET /rooms/:id/subscription-token). */
    SUBSCRIPTION_TOKEN_TTL_S: Type.Integer({ default: 300, minimum: 10, maximum: 86_400 }),
    /** A user's typing indicator in a room is published at most once per interval. */
    CHAT_TYPING_INTERVAL_MS: Type.Integer({ default: 2000, minimum: 100, maximum: 2_147_483_647 }),
  }),
]);
