import { after } from 'node:test';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisNodeRegistry } from './index.js';
import { nodeRegistryContract } from './contract.js';

const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { lazyConnect: false });
const prefixes: string[] = [];

after(async () => {
  for (const prefix of prefixes) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
});

async function waitUntil(deadlineMs: number, check: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met before the deadline');
    await new Promise((r) => setTimeout(r, 10));
  }
}

nodeRegistryContract('redis', () => {
  const prefix = `test:${randomUUID()}:`;
  prefixes.push(prefix);
  const registry = new RedisNodeRegistry(redis, prefix);
  return Promise.resolve({
    registry,
    // Real Redis time passes: wait until the short lease is gone (or fail at the deadline).
    waitPastTtl: (ms: number) =>
      waitUntil(ms + 2000, async () => {
        const nodes = await registry.liveNodes();
        return !nodes.includes('short');
      }),
  });
});
