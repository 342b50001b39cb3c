import { fileURLToPath } from 'node:url';
import { loadConfig } from '@ripple/config';
import { Topics } from '@ripple/events';
import { runProcess } from '@ripple/http';
import { startDomainService } from '@ripple/service';
import { buildApp } from './app.js';
import { NotificationEnv, SERVICE_NAME } from './config.js';
import { startNotificationConsumer } from './consumer.js';
import { createDb, transaction } from './db.js';

runProcess(SERVICE_NAME, () => {
  const config = loadConfig(NotificationEnv);
  let notificationConsumer: ReturnType<typeof startNotificationConsumer> | undefined;
  return startDomainService({
    name: SERVICE_NAME,
    description: 'Notifications made from post and chat events, and their unread counts.',
    config,
    migrationsDir: fileURLToPath(new URL('../prisma/migrations', import.meta.url)),
    topics: [Topics.notification],
    createDb,
    transaction,
    buildApp,
    async background({ deps, kafka, producer, logger, metrics }) {
      // Created once: the runtime calls `background` again when a start attempt failed.
      const consumer = (notificationConsumer ??= startNotificationConsumer({
        deps,
        kafka,
        producer,
        logger,
        topicPrefix: config.KAFKA_TOPIC_PREFIX,
        groupId: config.KAFKA_GROUP_ID,
        partitions: config.KAFKA_TOPIC_PARTITIONS,
        replicationFactor: config.KAFKA_REPLICATION_FACTOR,
        sessionTimeoutMs: config.KAFKA_SESSION_TIMEOUT_MS,
        metrics,
      }));
      // Connected and subscribed, not joined yet: from here `stop` can stop the consumer, and a
      // consumer stopped while it joins leaves the group (awaiting the join here, a SIGTERM during
      // it left the process's member in the group until its session timed out).
      const startedAt = Date.now();
      const { joined } = await consumer.begin();
      void joined.then(() => logger.info({ afterMs: Date.now() - startedAt }, 'joined the consumer group'));
      const janitor = setInterval(() => {
        const cutoff = new Date(Date.now() - config.PROCESSED_EVENTS_RETENTION_MS);
        deps.db.processedEvent.deleteMany({ where: { processedAt: { lt: cutoff } } }).catch((err: unknown) => {
          logger.warn({ err }, 'processed event clean-up failed');
        });
      }, 3_600_000);
      janitor.unref();
      return {
        async stop() {
          clearInterval(janitor);
          await consumer.stop();
        },
      };
    },
  });
});
