import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { waitUntil } from '@ripple/testing';
import { isolatedRun, spawnService } from './harness.js';
import type { RunningService } from './harness.js';

// `client_connection_up` says whether a connection works: one that was never made is not up.
const iso = isolatedRun('connup');
let service: RunningService | undefined;

after(async () => {
  await service?.stop();
  await iso.cleanup();
});

/** `client_connection_up{client,connection}` as /metrics exposes it, or undefined. */
function upOf(metrics: string, client: string, connection: string): number | undefined {
  for (const line of metrics.split('\n')) {
    const m = /^client_connection_up\{([^}]*)\} (\S+)$/.exec(line);
    if (m?.[1]?.includes(`client="${client}"`) && m[1].includes(`connection="${connection}"`)) return Number(m[2]);
  }
  return undefined;
}

test('a service whose Kafka was never reachable should report its producer down, and what it did reach up', async () => {
  service = await spawnService('post-service', {
    ...iso.env,
    KAFKA_BROKERS: '127.0.0.1:1',
    DATABASE_URL: iso.databaseUrl('post-service'),
  });
  const ready = await fetch(`${service.url}/readyz`);
  assert.equal(ready.status, 200, await ready.text());
  let metrics = '';
  // Kafka start-up fails in the background, retried: wait until it has failed once.
  await waitUntil('a failed Kafka start-up', 20_000, async () => {
    metrics = await (await fetch(`${service?.url}/metrics`)).text();
    return /^client_connection_errors_total\{[^}]*connection="start-up"[^}]*\} [1-9]/m.test(metrics);
  });
  assert.equal(upOf(metrics, 'kafkajs', 'producer'), 0, 'the producer never connected');
  assert.equal(upOf(metrics, 'kafkajs', 'start-up'), 0);
  assert.equal(upOf(metrics, 'ioredis', 'service'), 1, 'Redis connected at start');
  assert.equal(upOf(metrics, 'pg', 'prisma'), 1, '/readyz queried PostgreSQL');
});
