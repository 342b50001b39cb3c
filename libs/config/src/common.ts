import { Type } from '@sinclair/typebox';

/** `*`, or comma-separated origins (`scheme://host[:port]`, no path); may be empty. */
export const ORIGINS = '^(\\*|\\s*(https?://[^,/\\s]+(\\s*,\\s*https?://[^,/\\s]+)*)?\\s*)$';

/** Variables shared by every process. Defaults follow DESIGN.md §9. */
export const CommonEnv = {
  NODE_ENV: Type.Union([Type.Literal('development'), Type.Literal('production'), Type.Literal('test')], {
    default: 'development',
  }),
  LOG_LEVEL: Type.Union(
    [
      Type.Literal('fatal'),
      Type.Literal('error'),
      Type.Literal('warn'),
      Type.Literal('info'),
      Type.Literal('debug'),
      Type.Literal('trace'),
      Type.Literal('silent'),
    ],
    { default: 'info' },
  ),
  /**
   * Most bytes of log lines waiting in memory for stdout (the write in flight included). While
   * stdout stalls, lines past it are dropped and counted in `log_lines_dropped_total` rather than
   * held until the process runs out of memory. 16 MiB is minutes of a busy gateway's lines.
   */
  LOG_BUFFER_MAX_BYTES: Type.Integer({ default: 16 * 1024 * 1024, minimum: 65536, maximum: 1024 * 1024 * 1024 }),
  HOST: Type.String({ default: '0.0.0.0', minLength: 1 }),
  /**
   * The listen backlog: connections the kernel queues while the process has not accepted them yet
   * (Linux caps it at net.core.somaxconn). Node's default, 511, is too short for a reconnect storm:
   * past it the kernel drops SYNs and each client waits 1–63 s for its TCP retransmit.
   */
  LISTEN_BACKLOG: Type.Integer({ default: 4096, minimum: 1, maximum: 65535 }),
  /** Comma-separated host:port list. */
  KAFKA_BROKERS: Type.String({ default: '127.0.0.1:9092', pattern: '^[^,\\s]+:\\d+(,[^,\\s]+:\\d+)*$' }),
  /** Prepended to every topic name; lets test runs and tenants share one cluster. */
  KAFKA_TOPIC_PREFIX: Type.String({ default: '' }),
  REDIS_URL: Type.String({ default: 'redis://127.0.0.1:6379', pattern: '^rediss?://' }),
  /**
   * Prepended to every Redis key this process writes. No braces: the keys' hash tags (`{channel}`,
   * `{registry}`) must be the first braces of each key, or one script's keys fall in several slots.
   */
  REDIS_KEY_PREFIX: Type.String({ default: 'ripple:', pattern: '^[^{}]*$' }),
  JWT_SECRET: Type.Optional(Type.String({ minLength: 16 })),
  /** HS256 verifies access tokens with JWT_SECRET; RS256 with JWT_PUBLIC_KEY (PEM) or JWT_JWKS_URL. */
  JWT_ALGORITHM: Type.Union([Type.Literal('HS256'), Type.Literal('RS256')], { default: 'HS256' }),
  JWT_PUBLIC_KEY: Type.Optional(Type.String({ minLength: 1 })),
  JWT_JWKS_URL: Type.Optional(Type.String({ pattern: '^https?://' })),
  JWT_ISSUER: Type.Optional(Type.String({ minLength: 1 })),
  JWT_AUDIENCE: Type.Optional(Type.String({ minLength: 1 })),
  /**
   * Browser origins allowed to call the HTTP APIs and /sse (CORS): `*`, or comma-separated
   * origins. Unset: `*` outside production, none in production.
   */
  CORS_ORIGINS: Type.Optional(Type.String({ pattern: ORIGINS })),
};

/** The default per-service database URL (DESIGN.md §9): the service name with underscores. */
export function defaultDatabaseUrl(serviceName: string): string {
  return `postgresql://postgres@127.0.0.1:5432/${serviceName.replace(/-/g, '_')}`;
}

export function parseBrokers(list: string): string[] {
  return list.split(',').map((b) => b.trim());
}
