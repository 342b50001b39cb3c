import { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import { jwtOptionsFrom } from '@ripple/auth';
import { parseBrokers } from '@ripple/config';
import { applyMigrations, ensureDatabase } from '@ripple/db';
import type { RawSql, Transaction } from '@ripple/db';
import type { TopicName } from '@ripple/events';
import { allowedOriginsOf, deleteExpiredIdempotencyKeys, listeningPort, mutations } from '@ripple/http';
import type { ApiOptions, Mutations, ReadinessCheck, RunningProcess } from '@ripple/http';
import { createEventProducer, createKafka, ensureTopics } from '@ripple/kafka';
import type { EventProducer, KafkaClient } from '@ripple/kafka';
import { startOutboxService } from '@ripple/outbox';
import { connectionHealth, createLogger, createMetricsRegistry, watchConnection } from '@ripple/telemetry';
import type { ConnectionHealth, Logger, Registry } from '@ripple/telemetry';
import type { DomainServiceConfig } from './env.js';
import { directPublisher, eventsWritten, outboxEmitter, outboxMessages, recordingMutations } from './events.js';
import type { Emit, OutboxMessages, Publish } from './events.js';
import { statementBatcher } from './batch.js';
import { backlogShedding } from './shedding.js';
import type { StatementBatcher } from './batch.js';
import { transientDbError } from './prisma.js';
import { directStatements } from './statements.js';
import type { PoolOptions, TransactionOptions } from './prisma.js';

/** What a domain service's routes get: its database, Redis, the mutation runner and the event writer. */
export interface ApiDeps<Db, Tx extends RawSql> extends ApiOptions {
  readonly db: Db;
  readonly transaction: Transaction<Tx>;
  /**
   * Tells the in-process outbox relay that rows were committed (NOTIFY wakes the others). Call it
   * as soon as the commit returned, inside the unit of work that made the events
   * (`recordingEvents`; every `mutations` run is one): their ids stamp `outbox_commit_to_ack_seconds`.
   */
  readonly wakeOutbox: () => void;
  /** The mutation runner; refuses to start one (503 `outbox_backlog`) while the outbox relay falls behind (`backlogShedding`). */
  readonly mutations: Mutations<Tx>;
  readonly emit: Emit;
  /** An event's outbox row, for routes that write it in one statement with the state. */
  readonly outboxMessage: OutboxMessages;
  /** Group commit for a hot single-statement write: concurrent requests share one statement. */
  readonly batch: StatementBatcher;
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
  /** `health` follows the database client's connections: up as each opens, down at their errors. */
  readonly createDb: (
    url: string,
    health?: ConnectionHealth,
    pool?: PoolOptions,
  ) => Db & { $disconnect(): Promise<void> };
  readonly transaction: (db: Db, opts?: TransactionOptions) => Transaction<Tx>;
  readonly buildApp: (deps: ApiDeps<Db, Tx>) => Promise<FastifyInstance>;
  /**
   * Work on Kafka besides publishing (a consumer). Started in the background once Kafka answers
   * (topics created, producer connected), so it may start long after the service listens; its
   * `checks` join /readyz from then on.
   */
  readonly background?: (ctx: {
    deps: ApiDeps<Db, Tx>;
    kafka: KafkaClient;
    producer: EventProducer;
    logger: Logger;
    metrics: Registry;
  }) => Promise<{ stop(): Promise<void>; checks?: Record<string, ReadinessCheck> }>;
}

/** Wait between attempts to reach Kafka at start-up, in ms. */
const KAFKA_START_RETRY_MS = 1000;
/** Longest `stop` waits for a Kafka start attempt in flight, in ms. */
const STOP_WAIT_MS = 10_000;

/**
 * Starts a domain service: migrations (DB_MIGRATE=auto), Redis, the outbox (metrics, wake-ups),
 * then HTTP. Redis is not needed to start: the service is not ready until it answers. Kafka is
 * not needed to start or to serve: the outbox takes every write, and in the
 * background, retried every second until Kafka answers, the topics are created, the idempotent
 * producer connects, and the outbox relay and `background` work start. `stop` undoes it in
 * reverse order after the HTTP server has finished its in-flight requests.
 *
 * Readiness rule: /readyz checks what serves this service's own requests (PostgreSQL, Redis),
 * not Kafka, which the outbox exists to be independent of; `background` may add checks of its
 * own once it runs. Kafka trouble shows in `outbox_backlog_rows`,
 * `outbox_oldest_unsent_age_seconds` and `client_connection_up{client="kafkajs"}`.
 */
export async function startDomainService<Db extends RawSql, Tx extends RawSql>(
  spec: DomainServiceSpec<Db, Tx>,
): Promise<RunningProcess> {
  const { config } = spec;
  const logger = createLogger(spec.name, config.LOG_LEVEL, { bufferMaxBytes: config.LOG_BUFFER_MAX_BYTES });
  const jwt = jwtOptionsFrom(config, (msg) => logger.warn(msg));
  if (config.DB_MIGRATE === 'auto') {
    await ensureDatabase(config.DATABASE_URL);
    const { applied } = await applyMigrations(config.DATABASE_URL, spec.migrationsDir);
    if (applied.length > 0) logger.info({ applied }, 'migrations applied');
  }
  const metrics = createMetricsRegistry(spec.name);
  const health = (client: string, connection: string) => connectionHealth({ logger, metrics, client, connection });
  const dbHealth = health('pg', 'prisma');
  const db = spec.createDb(config.DATABASE_URL, dbHealth, {
    max: config.DB_POOL_MAX,
    timeoutMs: config.DB_POOL_TIMEOUT_MS,
  });
  const redis = createRedis(config.REDIS_URL);
  watchConnection(redis, health('ioredis', 'service'), 'ready');
  // The first attempt only: the service starts without Redis as without Kafka. Until Redis
  // answers, /readyz names it (the `redis` check) and rate limiting lets requests pass
  // (`skipOnError`); ioredis keeps reconnecting, and `watchConnection` logs the failure and the
  // recovery. (Waiting for the attempt keeps a service whose Redis answers ready from its start.)
  await redis.connect().catch(() => undefined);

  const kafka = createKafka({ brokers: parseBrokers(config.KAFKA_BROKERS), clientId: spec.name, logger });
  const producer = createEventProducer(kafka, { metrics, logger });
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
    shedWaitMs: config.OUTBOX_SHED_WAIT_MS,
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

  const checks: Record<string, ReadinessCheck> = {
    postgres: async () => {
      try {
        await db.$queryRaw`SELECT 1`;
      } catch (err) {
        dbHealth.failed(err);
        throw err;
      }
      dbHealth.recovered();
    },
    redis: async () => {
      await redis.ping();
    },
  };
  const transaction = spec.transaction(db, { maxWaitMs: config.DB_POOL_TIMEOUT_MS });
  const wakeOutbox = () => outbox.wake(eventsWritten());
  // The group-commit statements run on pg directly, not through Prisma's runtime.
  const direct = directStatements(
    config.DATABASE_URL,
    { max: config.DB_POOL_MAX, timeoutMs: config.DB_POOL_TIMEOUT_MS },
    health('pg', 'statements'),
  );
  // One object: `batch` recognises it to tell a pooled statement (batched) from a transaction's.
  const statements = direct.sql;
  const deps: ApiDeps<Db, Tx> = {
    name: spec.name,
    description: spec.description,
    logger,
    metrics,
    checks,
    jwt,
    redis,
    redisKeyPrefix: config.REDIS_KEY_PREFIX,
    rateLimit: {
      max: config.RATE_LIMIT_MAX,
      windowMs: config.RATE_LIMIT_WINDOW_MS,
      settleMs: config.RATE_LIMIT_SETTLE_MS,
    },
    corsOrigins: allowedOriginsOf(config.CORS_ORIGINS, config.NODE_ENV),
    // Every route, reads included: no connection free in time or the database away is a 503.
    classifyError: transientDbError,
    overload: {
      maxEventLoopDelayMs: config.OVERLOAD_MAX_EVENT_LOOP_DELAY_MS,
      maxInFlight: config.OVERLOAD_MAX_IN_FLIGHT,
      retryAfterSeconds: config.OVERLOAD_RETRY_AFTER_S,
    },
    db,
    transaction,
    wakeOutbox,
    mutations: backlogShedding(
      recordingMutations(mutations({ transaction, sql: statements, afterCommit: wakeOutbox })),
      () => outbox.shouldShed(),
    ),
    batch: statementBatcher(statements, metrics),
    emit: outboxEmitter(spec.name),
    outboxMessage: outboxMessages(spec.name),
    publish: directPublisher(spec.name, producer, config.KAFKA_TOPIC_PREFIX),
    now: () => new Date(),
  };

  // Kafka, in the background: retried until it answers; nothing above waits for it.
  let stopping = false;
  let background: Awaited<ReturnType<NonNullable<DomainServiceSpec<Db, Tx>['background']>>> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let wakeRetry: (() => void) | undefined;
  const kafkaHealth = health('kafkajs', 'start-up');
  const startKafka = async (): Promise<void> => {
    let producerConnected = false;
    for (let attempt = 1; !stopping; attempt++) {
      try {
        if (!producerConnected) {
          await ensureTopics(
            kafka,
            spec.topics.map((topic) => ({
              topic: config.KAFKA_TOPIC_PREFIX + topic,
              numPartitions: config.KAFKA_TOPIC_PARTITIONS,
              replicationFactor: config.KAFKA_REPLICATION_FACTOR,
              retentionMs: config.KAFKA_TOPIC_RETENTION_MS,
            })),
          );
          await producer.connect();
          producerConnected = true;
          outbox.startRelay();
          logger.info({ attempt }, 'kafka reachable: outbox relay started');
        }
        if (stopping) return;
        background = await spec.background?.({ deps, kafka, producer, logger, metrics });
        if (stopping) await background?.stop();
        else Object.assign(checks, background?.checks);
        kafkaHealth.recovered();
        return;
      } catch (err) {
        kafkaHealth.failed(err, { attempt });
        await new Promise<void>((resolve) => {
          wakeRetry = resolve;
          retryTimer = setTimeout(resolve, KAFKA_START_RETRY_MS);
        });
      }
    }
  };
  const kafkaStarted = startKafka();

  const app = await spec.buildApp(deps);
  await app.listen({ host: config.HOST, port: config.PORT, backlog: config.LISTEN_BACKLOG });
  logger.info({ port: listeningPort(app) }, 'listening');

  return {
    logger,
    async stop() {
      await app.close();
      stopping = true;
      if (retryTimer) clearTimeout(retryTimer);
      wakeRetry?.();
      // A start attempt in flight ends within kafkajs' retries; do not let it hold SIGTERM longer.
      await Promise.race([kafkaStarted, new Promise((r) => setTimeout(r, STOP_WAIT_MS).unref())]);
      await background?.stop();
      clearInterval(janitor);
      await outbox.stop();
      await producer.disconnect();
      redis.disconnect();
      await direct.end();
      await db.$disconnect();
    },
  };
}
