import { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import { jwtOptionsFrom } from '@ripple/auth';
import { parseBrokers } from '@ripple/config';
import { applyMigrations, ensureDatabase } from '@ripple/db';
import type { RawSql, Transaction } from '@ripple/db';
import type { TopicName } from '@ripple/events';
import { deleteExpiredIdempotencyKeys, listeningPort, mutations } from '@ripple/http';
import type { ApiOptions, Mutations, ReadinessCheck, RunningProcess } from '@ripple/http';
import { createEventProducer, createKafka, ensureTopics, kafkaReadiness } from '@ripple/kafka';
import type { EventProducer, Kafka } from '@ripple/kafka';
import { startOutboxService } from '@ripple/outbox';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import type { Logger, Registry } from '@ripple/telemetry';
import type { DomainServiceConfig } from './env.js';
import { directPublisher, outboxEmitter } from './events.js';
import type { Emit, Publish } from './events.js';

/** What a domain service's routes get: its database, Redis, the mutation runner and the event writer. */
export interface ApiDeps<Db, Tx extends RawSql> extends ApiOptions {
  readonly db: Db;
  readonly transaction: Transaction<Tx>;
  /** Tells the in-process outbox relay that rows were committed (NOTIFY wakes the others). */
  readonly wakeOutbox: () => void;
  readonly mutations: Mutations<Tx>;
  readonly emit: Emit;
  readonly publish: Publish;
  readonly now: () => Date;
}

/** A client for the service's Redis: commands fail fast while Redis is away instead of queueing. */
export function createRedis(url: string): Redis {
  return new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 1 });
}

export interface DomainServiceSpec<Db extends RawSql, Tx extends RawSql> {
  readonly name: string;
  readonly description: string;
  readonly config: DomainServiceConfig;
  readonly migrationsDir: string;
  /** Topics this service publishes to (created when missing). */
  readonly topics: readonly TopicName[];
  readonly createDb: (url: string) => Db & { $disconnect(): Promise<void> };
  readonly transaction: (db: Db) => Transaction<Tx>;
  readonly buildApp: (deps: ApiDeps<Db, Tx>) => Promise<FastifyInstance>;
  /** Work besides HTTP (a Kafka consumer), started before the service listens. */
  readonly background?: (ctx: {
    deps: ApiDeps<Db, Tx>;
    kafka: Kafka;
    producer: EventProducer;
    logger: Logger;
    metrics: Registry;
  }) => Promise<{ stop(): Promise<void>; checks?: Record<string, ReadinessCheck> }>;
}

/**
 * Starts a domain service: migrations (DB_MIGRATE=auto), topics, the idempotent producer, the
 * outbox relay, Redis, background work, then HTTP. `stop` undoes it in reverse order after the
 * HTTP server has finished its in-flight requests.
 */
export async function startDomainService<Db extends RawSql, Tx extends RawSql>(
  spec: DomainServiceSpec<Db, Tx>,
): Promise<RunningProcess> {
  const { config } = spec;
  const logger = createLogger(spec.name, config.LOG_LEVEL);
  const jwt = jwtOptionsFrom(config, (msg) => logger.warn(msg));
  if (config.DB_MIGRATE === 'auto') {
    await ensureDatabase(config.DATABASE_URL);
    const { applied } = await applyMigrations(config.DATABASE_URL, spec.migrationsDir);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
  }
  const db = spec.createDb(config.DATABASE_URL);
  const redis = createRedis(config.REDIS_URL);
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  await redis.connect();

  const kafka = createKafka({ brokers: parseBrokers(config.KAFKA_BROKERS), clientId: spec.name, logger });
  await ensureTopics(
    kafka,
    spec.topics.map((topic) => ({
      topic: config.KAFKA_TOPIC_PREFIX + topic,
      numPartitions: config.KAFKA_TOPIC_PARTITIONS,
      replicationFactor: config.KAFKA_REPLICATION_FACTOR,
      retentionMs: config.KAFKA_TOPIC_RETENTION_MS,
    })),
  );
  const metrics = createMetricsRegistry(spec.name);
  const producer = createEventProducer(kafka, { metrics });
  await producer.connect();
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
  const janitor = setInterval(
    () => {
      deleteExpiredIdempotencyKeys(db, config.IDEMPOTENCY_TTL_MS).catch((err: unknown) =>
        logger.warn({ err }, 'idempotency key clean-up failed'),
      );
    },
    Math.min(config.IDEMPOTENCY_TTL_MS, 600_000),
  );
  janitor.unref();

  const admin = kafka.admin();
  await admin.connect();
  const checks: Record<string, ReadinessCheck> = {
    postgres: async () => {
      await db.$queryRaw`SELECT 1`;
    },
    redis: async () => {
      await redis.ping();
    },
    kafka: kafkaReadiness(admin),
  };
  const transaction = spec.transaction(db);
  const wakeOutbox = () => outbox.wake();
  const deps: ApiDeps<Db, Tx> = {
    name: spec.name,
    description: spec.description,
    logger,
    metrics,
    checks,
    jwt,
    redis,
    redisKeyPrefix: config.REDIS_KEY_PREFIX,
    rateLimit: { max: config.RATE_LIMIT_MAX, windowMs: config.RATE_LIMIT_WINDOW_MS },
    db,
    transaction,
    wakeOutbox,
    mutations: mutations({ transaction, afterCommit: wakeOutbox }),
    emit: outboxEmitter(spec.name),
    publish: directPublisher(spec.name, producer, config.KAFKA_TOPIC_PREFIX),
    now: () => new Date(),
  };
  const background = await spec.background?.({ deps, kafka, producer, logger, metrics });
  Object.assign(checks, background?.checks);
  const app = await spec.buildApp(deps);
  await app.listen({ host: config.HOST, port: config.PORT });
  logger.info({ port: listeningPort(app) }, 'listening');

  return {
    logger,
    async stop() {
      await app.close();
      await background?.stop();
      clearInterval(janitor);
      await outbox.stop();
      await producer.disconnect();
      await admin.disconnect();
      redis.disconnect();
      await db.$disconnect();
    },
  };
}
