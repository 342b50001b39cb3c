import { after } from 'node:test';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { testInfra, waitUntil } from '@ripple/testing';
import { RedisNodeRegistry } from './index.js';
import { nodeRegistryContract } from './contract.js';

const redis = new Redis(testInfra.redisUrl);
const prefixes: string[] = [];

after(async () => {
  for (const prefix of prefixes) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
});

nodeRegistryContract('redis', () => {
  const prefix = `test:${randomUUID()}:`;
  prefixes.push(prefix);
  const registry = new RedisNodeRegistry(redis, prefix);
  return Promise.resolve({
    registry,
    // Real Redis time passes: wait until the short lease is gone (or fail at the deadline).
    waitPastTtl: (ms: number) =>
      waitUntil('the short lease to expire', ms + 2000, async () => !(await registry.liveNodes()).includes('short')),
  });
});
