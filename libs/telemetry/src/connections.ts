import type { Logger } from './logger.js';
import { Counter, Gauge } from './metrics.js';
import type { Registry } from './metrics.js';

/**
 * The health of one connection object of a client library (a pg pool or client, a kafkajs
 * producer/consumer/admin, an ioredis client). It reads down until its first success: a
 * connection that was never made is not up. A connection that keeps failing is logged once when
 * it goes bad (or first fails without ever having worked) and once when it recovers, never once
 * per retry; every failure is counted.
 */
export interface ConnectionHealth {
  /**
   * Records one failure: increments `client_connection_errors_total{client,connection}`, sets
   * `client_connection_up` to 0, and logs a warning only if the connection was healthy.
   */
  failed(err: unknown, fields?: Record<string, unknown>): void;
  /**
   * Records a success (a connection made, an operation that went through): sets
   * `client_connection_up` to 1 and logs once if it was failing.
   */
  recovered(fields?: Record<string, unknown>): void;
  /** Whether the last thing recorded was a success (false before anything was recorded). */
  readonly healthy: boolean;
}

export interface ConnectionHealthOptions {
  readonly logger: Logger;
  readonly metrics: Registry;
  /** The client library: `pg`, `kafkajs`, `ioredis`. */
  readonly client: string;
  /** Which connection of this process: `outbox-relay-lock`, `producer`, `prisma-pool`. */
  readonly connection: string;
}

function metricsOf(registry: Registry) {
  const errors =
    (registry.getSingleMetric('client_connection_errors_total') as Counter<'client' | 'connection'> | undefined) ??
    new Counter({
      name: 'client_connection_errors_total',
      help: 'Errors reported by client library connections (pg, kafkajs, ioredis), by client and connection',
      labelNames: ['client', 'connection'],
      registers: [registry],
    });
  const up =
    (registry.getSingleMetric('client_connection_up') as Gauge<'client' | 'connection'> | undefined) ??
    new Gauge({
      name: 'client_connection_up',
      help: '1 while a client library connection works; 0 until its first success and from each error until it recovers',
      labelNames: ['client', 'connection'],
      registers: [registry],
    });
  return { errors, up };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Health tracking for one connection, starting down (`client_connection_up` 0) until the first
 * `recovered()`; metrics are registered once per registry and shared.
 */
export function connectionHealth(opts: ConnectionHealthOptions): ConnectionHealth {
  const { errors, up } = metricsOf(opts.metrics);
  const labels = { client: opts.client, connection: opts.connection };
  up.set(labels, 0);
  // 'new': nothing recorded yet. It reads down; its first failure is logged, its first success
  // is not (nothing recovered).
  let state: 'new' | 'up' | 'down' = 'new';
  let since = 0;
  let failures = 0;
  return {
    failed(err, fields = {}) {
      errors.inc(labels);
      failures++;
      if (state === 'down') return;
      state = 'down';
      since = Date.now();
      up.set(labels, 0);
      opts.logger.warn({ ...labels, ...fields, err: messageOf(err) }, 'client connection failing');
    },
    recovered(fields = {}) {
      if (state === 'up') return;
      const wasDown = state === 'down';
      state = 'up';
      up.set(labels, 1);
      if (!wasDown) return;
      opts.logger.info(
        { ...labels, ...fields, downForMs: Date.now() - since, failures },
        'client connection recovered',
      );
      failures = 0;
    },
    get healthy() {
      return state === 'up';
    },
  };
}

/** Anything with an `error` event: pg.Pool, pg.Client, ioredis. */
interface ErrorEmitter {
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/**
 * Handles `error` events of `emitter` (so none is ever unhandled) with `health`. Pass
 * `recoverOn` (e.g. `'ready'` for ioredis, `'connect'` for a pg pool) to record recovery.
 * Returns `health` for further use.
 */
export function watchConnection(emitter: ErrorEmitter, health: ConnectionHealth, recoverOn?: string): ConnectionHealth {
  emitter.on('error', (err) => health.failed(err));
  if (recoverOn)
    (emitter as unknown as { on(event: string, l: () => void): unknown }).on(recoverOn, () => health.recovered());
  return health;
}
