import { fileURLToPath } from 'node:url';
import { resolveJwtSecret } from '@ripple/auth';
import { applyMigrations, ensureDatabase } from '@ripple/db';
import { Topics } from '@ripple/events';
import { listeningPort, runProcess } from '@ripple/http';
import { createEventProducer, createKafka, ensureTopics, kafkaReadiness } from '@ripple/kafka';
import { startOutboxService } from '@ripple/outbox';
import { parseBrokers } from '@ripple/config';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { buildApp } from './app.js';
import { SERVICE_NAME, loadPostServiceConfig } from './config.js';
import { createDb, prismaPostStore } from './prisma-store.js';

const MIGRATIONS = fileURLToPath(new URL('../prisma/migrations', import.meta.url));

runProcess(SERVICE_NAME, async () => {
  const config = loadPostServiceConfig();
  const logger = createLogger(SERVICE_NAME, config.LOG_LEVEL);
  const jwtSecret = resolveJwtSecret(config, (msg) => logger.warn(msg));

  if (config.DB_MIGRATE === 'auto') {
    await ensureDatabase(config.DATABASE_URL);
    const { applied } = await applyMigrations(config.DATABASE_URL, MIGRATIONS);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
  }
  const db = createDb(config.DATABASE_URL);

  const kafka = createKafka({ brokers: parseBrokers(config.KAFKA_BROKERS), clientId: SERVICE_NAME, logger });
  await ensureTopics(kafka, [
    {
      topic: config.KAFKA_TOPIC_PREFIX + Topics.post,
      numPartitions: config.KAFKA_TOPIC_PARTITIONS,
      replicationFactor: config.KAFKA_REPLICATION_FACTOR,
      retentionMs: config.KAFKA_TOPIC_RETENTION_MS,
    },
  ]);
  const producer = createEventProducer(kafka);
  await producer.connect();
  const metrics = createMetricsRegistry(SERVICE_NAME);
  const outbox = startOutboxService({
    databaseUrl: config.DATABASE_URL,
    producer,
    topicPrefix: config.KAFKA_TOPIC_PREFIX,
    logger: logger.child({ component: 'outbox-relay' }),
    metrics,
    batchSize: config.OUTBOX_BATCH_SIZE,
    pollIntervalMs: config.OUTBOX_POLL_INTERVAL_MS,
    leaseMs: config.OUTBOX_LEASE_MS,
    retentionMs: config.OUTBOX_RETENTION_MS,
  });

  const admin = kafka.admin();
  await admin.connect();
  const app = buildApp({
    store: prismaPostStore(db),
    now: () => new Date(),
    afterCommit: () => outbox.wake(),
    jwtSecret,
    logger,
    metrics,
    checks: {
      postgres: async () => {
        await db.$queryRaw`SELECT 1`;
      },
      kafka: kafkaReadiness(admin),
    },
  });
  await app.listen({ host: config.HOST, port: config.PORT });
  logger.info({ port: listeningPort(app) }, 'listening');

  return {
    logger,
    async stop() {
      await app.close();
      await outbox.stop();
      await producer.disconnect();
      await admin.disconnect();
      await db.$disconnect();
    },
  };
});
