import { randomUUID } from 'node:crypto';
import { DEVELOPMENT_JWT_SECRET, jwtSecret, signAccessToken } from '@ripple/auth';
import { applyMigrations, dropDatabase, ensureDatabase } from '@ripple/db';
import type { RawSql, Transaction } from '@ripple/db';
import type { AnyEvent } from '@ripple/events';
import { mutations } from '@ripple/http';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { runId, testDatabaseUrl, testInfra } from '@ripple/testing';
import { outboxEmitter } from './events.js';
import { createRedis } from './runtime.js';
import type { ApiDeps } from './runtime.js';

/**
 * A domain service's dependencies on the real test PostgreSQL (a fresh database, migrated) and
 * Redis (a fresh key prefix), for HTTP tests with `app.inject`. `close` drops both.
 */
export async function apiTestbed<Db extends RawSql & { $disconnect(): Promise<void> }, Tx extends RawSql>(spec: {
  name: string;
  migrationsDir: string;
  createDb: (url: string) => Db;
  transaction: (db: Db) => Transaction<Tx>;
  rateLimit?: { max: number; windowMs: number };
}) {
  const id = runId();
  const url = testDatabaseUrl(`${spec.name.replace(/-/g, '_')}_test_${id}`);
  await ensureDatabase(url);
  await applyMigrations(url, spec.migrationsDir);
  const db = spec.createDb(url);
  const redis = createRedis(testInfra.redisUrl);
  await redis.connect();
  const redisKeyPrefix = `test:${id}:`;
  const secret = DEVELOPMENT_JWT_SECRET;
  let commits = 0;
  const deps: ApiDeps<Db, Tx> = {
    name: spec.name,
    description: `${spec.name} under test`,
    logger: createLogger(spec.name, 'silent'),
    metrics: createMetricsRegistry(spec.name),
    checks: {},
    jwt: { verification: { algorithm: 'HS256', secret } },
    redis,
    redisKeyPrefix,
    rateLimit: spec.rateLimit ?? { max: 10_000, windowMs: 60_000 },
    db,
    mutations: mutations({ transaction: spec.transaction(db), afterCommit: () => (commits += 1) }),
    emit: outboxEmitter(spec.name),
    now: () => new Date(),
  };
  return {
    deps,
    url,
    /** A valid access token for `user`. */
    token: (user: string, opts: { ttlSeconds?: number } = {}) =>
      signAccessToken(jwtSecret(secret), user, { ttlSeconds: opts.ttlSeconds ?? 600 }),
    /** `Authorization` header for `user`, with a fresh Idempotency-Key unless one is given. */
    auth: async (user: string, idempotencyKey: string = randomUUID()) => ({
      authorization: `Bearer ${await signAccessToken(jwtSecret(secret), user)}`,
      'idempotency-key': idempotencyKey,
    }),
    /** Every event written to the outbox so far, in order. */
    events: async (): Promise<AnyEvent[]> => {
      const rows = await db.$queryRaw<{ value: string }[]>`SELECT value FROM outbox ORDER BY id`;
      return rows.map((r) => JSON.parse(r.value) as AnyEvent);
    },
    commits: () => commits,
    async close() {
      await db.$disconnect();
      const keys = await redis.keys(`${redisKeyPrefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
      await dropDatabase(url);
    },
  };
}
