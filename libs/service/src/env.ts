import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { CommonEnv, defaultDatabaseUrl } from '@ripple/config';
import { DEVELOPMENT_JWT_SECRET } from '@ripple/auth';
import { RippleError } from '@ripple/errors';
import type { JwtOptions } from '@ripple/http';

/** The configuration every domain service reads (README "Configuration"). */
export function domainServiceEnv(serviceName: string, port: number) {
  return Type.Object({
    ...CommonEnv,
    PORT: Type.Integer({ default: port, minimum: 0, maximum: 65535 }),
    DATABASE_URL: Type.String({ default: defaultDatabaseUrl(serviceName), pattern: '^postgres(ql)?://' }),
    /** `auto` applies pending migrations at start-up; `off` leaves that to the operator. */
    DB_MIGRATE: Type.Union([Type.Literal('auto'), Type.Literal('off')], { default: 'auto' }),
    /** HS256 verifies with JWT_SECRET; RS256 with JWT_PUBLIC_KEY (PEM) or JWT_JWKS_URL. */
    JWT_ALGORITHM: Type.Union([Type.Literal('HS256'), Type.Literal('RS256')], { default: 'HS256' }),
    JWT_PUBLIC_KEY: Type.Optional(Type.String({ minLength: 1 })),
    JWT_JWKS_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
    JWT_ISSUER: Type.Optional(Type.String({ minLength: 1 })),
    JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),
    /** Requests per user per window, shared by all replicas through Redis. */
    RATE_LIMIT_MAX: Type.Integer({ default: 300, minimum: 1 }),
    RATE_LIMIT_WINDOW_MS: Type.Integer({ default: 60_000, minimum: 100 }),
    /** How long an Idempotency-Key's answer is kept for replay. */
    IDEMPOTENCY_TTL_MS: Type.Integer({ default: 24 * 3600 * 1000, minimum: 1000 }),
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
}

export type DomainServiceConfig = Readonly<Static<ReturnType<typeof domainServiceEnv>>>;

/**
 * How access tokens are verified. HS256 without JWT_SECRET uses the development secret (with a
 * warning) outside production and is refused in production; RS256 needs a key source.
 */
export function jwtOptionsFrom(config: DomainServiceConfig, warn: (msg: string) => void): JwtOptions {
  const claims = { issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE };
  if (config.JWT_ALGORITHM === 'RS256') {
    if (config.JWT_PUBLIC_KEY !== undefined) {
      return { verification: { algorithm: 'RS256', publicKey: config.JWT_PUBLIC_KEY }, ...claims };
    }
    if (config.JWT_JWKS_URL !== undefined) {
      return { verification: { algorithm: 'RS256', jwksUrl: config.JWT_JWKS_URL }, ...claims };
    }
    throw new RippleError('CONFIG_INVALID', 'JWT_ALGORITHM=RS256 needs JWT_PUBLIC_KEY or JWT_JWKS_URL');
  }
  if (config.JWT_SECRET !== undefined)
    return { verification: { algorithm: 'HS256', secret: config.JWT_SECRET }, ...claims };
  if (config.NODE_ENV === 'production') {
    throw new RippleError('CONFIG_INVALID', 'JWT_SECRET must be set when NODE_ENV=production');
  }
  warn('JWT_SECRET is not set: using the development secret. Never do this in production.');
  return { verification: { algorithm: 'HS256', secret: DEVELOPMENT_JWT_SECRET }, ...claims };
}
