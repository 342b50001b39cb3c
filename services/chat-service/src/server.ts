import { fileURLToPath } from 'node:url';
import { resolveJwtSecret } from '@ripple/auth';
import { loadConfig } from '@ripple/config';
import { Topics } from '@ripple/events';
import { runProcess } from '@ripple/http';
import { startDomainService } from '@ripple/service';
import { buildApp } from './app.js';
import { ChatEnv, SERVICE_NAME } from './config.js';
import { createDb, transaction } from './db.js';

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
