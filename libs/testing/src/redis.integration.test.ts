import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { cleanupAll, deleteKeys, runId, testInfra } from './index.js';

const redis = new Redis(testInfra.redisUrl);
const prefix = `delkeys:${runId()}:`;
after(() =>
  cleanupAll(
    () => redis.del(`${prefix}outside`),
    () => redis.disconnect(),
  ),
);

test('deleteKeys should delete every key matching its pattern, in chunks, and no other', async () => {
  const count = 1_250; // more than one SCAN/UNLINK chunk of 500
  const pipeline = redis.pipeline();
  for (let i = 0; i < count; i++) pipeline.set(`${prefix}in:${i}`, '1');
  pipeline.set(`${prefix}outside`, '1');
  await pipeline.exec();
  assert.equal(await deleteKeys(redis, `${prefix}in:*`), count);
  assert.deepEqual(await redis.keys(`${prefix}in:*`), []);
  assert.equal(await redis.exists(`${prefix}outside`), 1);
  assert.equal(await deleteKeys(redis, `${prefix}in:*`), 0);
});
