import { fileURLToPath } from 'node:url';
import { Type } from '@sinclair/typebox';
import { resolveJwtSecret } from '@ripple/auth';
import { loadConfig } from '@ripple/config';
import { Topics } from '@ripple/events';
import { runProcess } from '@ripple/http';
import { domainServiceEnv, startDomainService } from '@ripple/service';
import { buildApp } from './app.js';
import { createDb, transaction } from './db.js';

const SERVICE_NAME = 'chat-service';

const ChatEnv = Type.Composite([
  domainServiceEnv(SERVICE_NAME, 3002),
  Type.Object({
    /** Lifetime of a room subscription token (GET /rooms/:id/subscription-token). */
    SUBSCRIPTION_TOKEN_TTL_S: Type.Integer({ default: 300, minimum: 10, maximum: 86_400 }),
    /** A user's typing indicator in a room is published at most once per interval. */
    CHAT_TYPING_INTERVAL_MS: Type.Integer({ default: 2000, minimum: 100, maximum: 2_147_483_647 }),
  }),
]);

runProcess(SERVICE_NAME, () => {
  const config = loadConfig(ChatEnv);
  return startDomainService({
    name: SERVICE_NAME,
    description: 'Chat rooms, members, messages, typing indicators and read receipts.',
    config,
    migrationsDir: fileURLToPath(new URL('../prisma/migrations', import.meta.url)),
    topics: [Topics.chat],
    createDb,
    transaction,
    buildApp: (deps) =>
      buildApp({
        ...deps,
        // Subscription tokens are HS256 with JWT_SECRET, which chat-service shares with the gateway.
        subscriptionSecret: resolveJwtSecret(config, (msg) => deps.logger.warn(msg)),
        subscriptionTokenTtlSeconds: config.SUBSCRIPTION_TOKEN_TTL_S,
        typingIntervalMs: config.CHAT_TYPING_INTERVAL_MS,
      }),
  });
});
