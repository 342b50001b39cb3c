import { fileURLToPath } from 'node:url';
import { loadConfig } from '@ripple/config';
import { Topics } from '@ripple/events';
import { runProcess } from '@ripple/http';
import { domainServiceEnv, startDomainService } from '@ripple/service';
import { buildApp } from './app.js';
import { createDb, transaction } from './db.js';

const SERVICE_NAME = 'post-service';

runProcess(SERVICE_NAME, () =>
  startDomainService({
    name: SERVICE_NAME,
    description: 'Posts, likes and comments; every change is written with its event through the transactional outbox.',
    config: loadConfig(domainServiceEnv(SERVICE_NAME, 3001)),
    migrationsDir: fileURLToPath(new URL('../prisma/migrations', import.meta.url)),
    topics: [Topics.post, Topics.user],
    createDb,
    transaction,
    buildApp,
  }),
);
