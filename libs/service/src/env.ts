import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { CommonEnv, defaultDatabaseUrl } from '@ripple/config';

/** The longest delay a Node timer takes (2^31-1 ms); interval settings stay below it. */
const MAX_DELAY_MS = 2_147_483_647;

/** The configuration every domain service reads (README "Configuration"). */
export function domainServiceEnv(serviceName: string, port: number) {
  return Type.Object({
    ...CommonEnv,
    PORT: Type.Integer({ default: port, minimum: 0, maximum: 65535 }),
    DATABASE_URL: Type.String({ default: defaultDatabaseUrl(serviceName), pattern: '^postgres(ql)?://' }),
    /** `auto` applies pending migrations at start-up; `off` leaves that to the operator. */
    DB_MIGRATE: Type.Union([Type.Literal('auto'), Type.Literal('off')], { default: 'auto' }),
    /** Requests per user per window, shared by all replicas through Redis. */
    RATE_LIMIT_MAX: Type.Integer({ default: 300, minimum: 1 }),
    RATE_LIMIT_WINDOW_MS: Type.Integer({ default: 60_000, minimum: 100, maximum: MAX_DELAY_MS }),
    /** How often a replica adds its local rate-limit counts to Redis (README: Rate limits). */
    RATE_LIMIT_SETTLE_MS: Type.Integer({ default: 100, minimum: 1, maximum: 60_000 }),
    /** How long an Idempotency-Key's answer is kept for replay. */
    IDEMPOTENCY_TTL_MS: Type.Integer({ default: 24 * 3600 * 1000, minimum: 1000 }),
    OUTBOX_POLL_INTERVAL_MS: Type.Integer({ default: 1000, minimum: 10, maximum: MAX_DELAY_MS }),
    OUTBOX_BATCH_SIZE: Type.Integer({ default: 500, minimum: 1, maximum: 10_000 }),
    /** How long a relay may hold an outbox shard while Kafka does not answer. */
    OUTBOX_LEASE_MS: Type.Integer({ default: 30_000, minimum: 1000, maximum: MAX_DELAY_MS }),
    /**
     * Refuse writes (503, `outbox_backlog`) while the outbox relay publishes but falls behind and a
     * row written now would wait longer than this many ms for it; take them again at half of it.
     * 0: never. See `BacklogShedder` in @ripple/outbox.
     */
    OUTBOX_SHED_WAIT_MS: Type.Integer({ default: 500, minimum: 0, maximum: 600_000 }),
    /** Sent outbox rows are deleted after this long. */
    OUTBOX_RETENTION_MS: Type.Integer({ default: 24 * 3600 * 1000, minimum: 1000 }),
    KAFKA_TOPIC_RETENTION_MS: Type.Integer({ default: 7 * 24 * 3600 * 1000, minimum: 60_000 }),
    KAFKA_TOPIC_PARTITIONS: Type.Integer({ default: 6, minimum: 1 }),
    KAFKA_REPLICATION_FACTOR: Type.Integer({ default: 1, minimum: 1 }),
    /** Most PostgreSQL connections of the service's Prisma pool, and of its pg pool for the group-commit statements. */
    DB_POOL_MAX: Type.Integer({ default: 10, minimum: 1, maximum: 1000 }),
    /** Longest a transaction waits for a pooled connection before the request is shed (503). */
    DB_POOL_TIMEOUT_MS: Type.Integer({ default: 1000, minimum: 1, maximum: 60_000 }),
    /** Shed requests while the event loop's mean delay is above this many ms; 0: never. */
    OVERLOAD_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ default: 200, minimum: 0, maximum: 60_000 }),
    /** Shed a request that arrives while this many are in flight; 0: never. */
    OVERLOAD_MAX_IN_FLIGHT: Type.Integer({ default: 256, minimum: 0 }),
    /** `Retry-After` of a shed request, in seconds. */
    OVERLOAD_RETRY_AFTER_S: Type.Integer({ default: 1, minimum: 1, maximum: 3600 }),
  });
}

export type DomainServiceConfig = Readonly<Static<ReturnType<typeof domainServiceEnv>>>;
