import { Type } from '@sinclair/typebox';
import { CommonEnv, defaultDatabaseUrl, loadConfig } from '@ripple/config';

export const SERVICE_NAME = 'post-service';

export const PostServiceEnv = Type.Object({
  ...CommonEnv,
  PORT: Type.Integer({ default: 3001, minimum: 0, maximum: 65535 }),
  DATABASE_URL: Type.String({ default: defaultDatabaseUrl(SERVICE_NAME), pattern: '^postgres(ql)?://' }),
  /** `auto` applies pending migrations at start-up; `off` leaves that to the operator. */
  DB_MIGRATE: Type.Union([Type.Literal('auto'), Type.Literal('off')], { default: 'auto' }),
  OUTBOX_POLL_INTERVAL_MS: Type.Integer({ default: 1000, minimum: 10 }),
  OUTBOX_BATCH_SIZE: Type.Integer({ default: 100, minimum: 1, maximum: 10_000 }),
  /** How long a relay may hold an outbox shard while Kafka does not answer. */
  OUTBOX_LEASE_MS: Type.Integer({ default: 30_000, minimum: 1000 }),
  /** Sent outbox rows are deleted after this long. */
  OUTBOX_RETENTION_MS: Type.Integer({ default: 24 * 3600 * 1000, minimum: 1000 }),
  KAFKA_TOPIC_RETENTION_MS: Type.Integer({ default: 7 * 24 * 3600 * 1000, minimum: 60_000 }),
  KAFKA_TOPIC_PARTITIONS: Type.Integer({ default: 6, minimum: 1 }),
  KAFKA_REPLICATION_FACTOR: Type.Integer({ default: 1, minimum: 1 }),
});

export type PostServiceConfig = ReturnType<typeof loadPostServiceConfig>;

export function loadPostServiceConfig(env: Record<string, string | undefined> = process.env) {
  return loadConfig(PostServiceEnv, env);
}
