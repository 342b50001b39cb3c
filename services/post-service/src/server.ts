import { fileURLToPath } from 'node:url';
import { loadConfig } from '@ripple/config';
import { Topics } from '@ripple/events';
import { runProcess } from '@ripple/http';
import { startDomainService } from '@ripple/service';
import { buildApp } from './app.js';
import { PostEnv, SERVICE_NAME } from './config.js';
import { createDb, transaction } from './db.js';

runProcess(SERVICE_NAME, () =>
  startDomainService({
    name: SERVICE_NAME,
    description: 'Posts, likes and comments; every change is written with its event through the transactional outbox.',
    config: loadConfig(PostEnv),
    migrationsDir: fileURLToPath(new URL('../prisma/migrations', import.meta.url)),
    topics: [Topics.post, Topics.user],
    createDb,
    transaction,
    buildApp,
  }),
);
