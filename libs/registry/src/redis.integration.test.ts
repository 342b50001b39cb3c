import { after } from 'node:test';
import { Redis } from 'ioredis';
import { runId, testInfra } from '@ripple/testing';
import { LeasedDirectory, RedisHistory, RedisLeasedSets } from './index.js';
import { directoryContract, historyContract } from './contract.js';

const redis = new Redis(testInfra.redisUrl);
const prefixes: string[] = [];

after(async () => {
  for (const prefix of prefixes) {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
});

function prefix(): string {
  const p = `test:${runId()}:`;
  prefixes.push(p);
  return p;
}

directoryContract('redis', () => {
  const p = prefix();
  const leaseMs = 300;
  const sets = new RedisLeasedSets(redis);
  return Promise.resolve({
    forNode: (nodeId: string) => new LeasedDirectory(sets, p, nodeId, leaseMs),
    wipe: async () => {
      const keys = await redis.keys(`${p}*`);
      if (keys.length > 0) await redis.del(...keys);
    },
    // Real Redis time has to pass for leases to run out.
    expire: () => new Promise<void>((resolve) => setTimeout(resolve, leaseMs + 50)),
  });
});

historyContract('redis', (maxLength) => {
  const p = prefix();
  return Promise.resolve({
    history: new RedisHistory(redis, p, { maxLength, ttlMs: 60_000 }),
    lose: async (channel: string) => {
      await redis.del(`${p}history:{${channel}}`, `${p}history-meta:{${channel}}`);
    },
  });
});
