// chat-service: serves health, readiness and metrics on its port and owns its database and its topic.
import pg from 'pg';
import { Type } from '@sinclair/typebox';
import { CommonEnv, defaultDatabaseUrl, loadConfig, parseBrokers } from '@ripple/config';
import { ensureDatabase, postgresReadiness } from '@ripple/db';
import { Topics } from '@ripple/events';
import { listeningPort, runProcess, serviceShell } from '@ripple/http';
import { createKafka, ensureTopics, kafkaReadiness } from '@ripple/kafka';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';

const SERVICE_NAME = 'chat-service';

runProcess(SERVICE_NAME, async () => {
  const config = loadConfig(
    Type.Object({
      ...CommonEnv,
      PORT: Type.Integer({ default: 3002, minimum: 0, maximum: 65535 }),
      DATABASE_URL: Type.String({ default: defaultDatabaseUrl(SERVICE_NAME), pattern: '^postgres(ql)?://' }),
      KAFKA_TOPIC_PARTITIONS: Type.Integer({ default: 6, minimum: 1 }),
      KAFKA_REPLICATION_FACTOR: Type.Integer({ default: 1, minimum: 1 }),
    }),
  );
  const logger = createLogger(SERVICE_NAME, config.LOG_LEVEL);
  await ensureDatabase(config.DATABASE_URL);
  const pool = new pg.Pool({ connectionString: config.DATABASE_URL, max: 4 });
  const kafka = createKafka({ brokers: parseBrokers(config.KAFKA_BROKERS), clientId: SERVICE_NAME, logger });
  await ensureTopics(kafka, [
    {
      topic: config.KAFKA_TOPIC_PREFIX + Topics.chat,
      numPartitions: config.KAFKA_TOPIC_PARTITIONS,
      replicationFactor: config.KAFKA_REPLICATION_FACTOR,
    },
  ]);
  const admin = kafka.admin();
  await admin.connect();
  const app = serviceShell({
    logger,
    metrics: createMetricsRegistry(SERVICE_NAME),
    checks: {
      postgres: postgresReadiness(pool),
      kafka: kafkaReadiness(admin),
    },
  });
  await app.listen({ host: config.HOST, port: config.PORT });
  logger.info({ port: listeningPort(app) }, 'listening');
  return {
    logger,
    async stop() {
      await app.close();
      await admin.disconnect();
      await pool.end();
    },
  };
});
