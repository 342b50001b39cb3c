import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectionHealth, watchConnection } from './connections.js';
import { createLogger } from './logger.js';
import { createMetricsRegistry } from './metrics.js';
import type { Registry } from './metrics.js';

const logger = createLogger('connections-test', 'silent');

/** `client_connection_up{client,connection}` as the registry would expose it, or undefined. */
async function upOf(metrics: Registry, connection: string): Promise<number | undefined> {
  const gauge = metrics.getSingleMetric('client_connection_up');
  const values = (await gauge?.get())?.values ?? [];
  return values.find((v) => v.labels.connection === connection)?.value;
}

test('a connection should read down until its first success, then follow failures and recoveries', async () => {
  const metrics = createMetricsRegistry('connections-test');
  const health = connectionHealth({ logger, metrics, client: 'kafkajs', connection: 'producer' });
  assert.equal(await upOf(metrics, 'producer'), 0, 'no connection made yet');
  assert.equal(health.healthy, false);

  health.recovered();
  assert.equal(await upOf(metrics, 'producer'), 1, 'connected');
  assert.equal(health.healthy, true);

  health.failed(new Error('broker gone'));
  assert.equal(await upOf(metrics, 'producer'), 0, 'failing');
  health.recovered();
  assert.equal(await upOf(metrics, 'producer'), 1, 'recovered');
});

test('a connection that never connected should read down through its failures and count each', async () => {
  const metrics = createMetricsRegistry('connections-test');
  const health = connectionHealth({ logger, metrics, client: 'kafkajs', connection: 'producer' });
  health.failed(new Error('ECONNREFUSED'));
  health.failed(new Error('ECONNREFUSED'));
  assert.equal(await upOf(metrics, 'producer'), 0);
  const errors = await metrics.getSingleMetric('client_connection_errors_total')?.get();
  assert.equal(errors?.values.find((v) => v.labels.connection === 'producer')?.value, 2);
});

test('a watched emitter should read up only once it emits its recovery event', async () => {
  const metrics = createMetricsRegistry('connections-test');
  const pool = new EventEmitter();
  watchConnection(pool, connectionHealth({ logger, metrics, client: 'pg', connection: 'pool' }), 'connect');
  assert.equal(await upOf(metrics, 'pool'), 0);
  pool.emit('connect');
  assert.equal(await upOf(metrics, 'pool'), 1);
  pool.emit('error', new Error('terminated'));
  assert.equal(await upOf(metrics, 'pool'), 0);
});
