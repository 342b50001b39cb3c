// Not a test of its own: cleanup.test.ts runs this file with `node --test`. Its `before` takes an
// isolated run's topic, database and Redis key, then fails the way a gateway that did not start
// does, leaving `gateway` undefined; its `after` has the shape every test file's clean-up has, so
// the test can check that such an `after` still removes everything and still reports the failure.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import { ensureDatabase } from '@ripple/db';
import { Topics } from '@ripple/events';
import { createKafka, ensureTopics } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, testInfra } from '@ripple/testing';
import { isolatedRun } from './harness.js';
import type { RunningService } from './harness.js';

const iso = isolatedRun('fb');
let gateway: RunningService;

before(async () => {
  const runFile = process.env.FIXTURE_RUN_FILE;
  assert.ok(runFile, 'FIXTURE_RUN_FILE names the file that gets the run id');
  writeFileSync(runFile, iso.run);
  const kafka = createKafka({ brokers: testInfra.kafkaBrokers, clientId: 'fb', logger: createLogger('fb', 'silent') });
  await ensureTopics(kafka, [
    { topic: iso.env.KAFKA_TOPIC_PREFIX + Topics.post, numPartitions: 1, replicationFactor: 1 },
  ]);
  await ensureDatabase(iso.databaseUrl('post-service'));
  const redis = new Redis(testInfra.redisUrl);
  await redis.set(`${iso.env.REDIS_KEY_PREFIX}marker`, '1');
  redis.disconnect();
  gateway = await notStarting();
});

after(() =>
  cleanupAll(
    () => gateway.stop(),
    () => iso.cleanup(),
  ),
);

test('never runs: its before failed', () => {
  assert.ok(gateway);
});

/** A gateway start that fails, as spawnService does when the process exits before listening. */
function notStarting(): Promise<RunningService> {
  return Promise.reject(new Error('failing on purpose: the gateway did not start'));
}
