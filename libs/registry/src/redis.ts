import type { Redis } from 'ioredis';
import type { NodeRegistry } from './nodes.js';

/**
 * Heartbeat, atomically.
 * KEYS[1] = the nodes sorted set (member: node id, score: lease expiry in ms, Redis clock)
 * ARGV[1] = node id, ARGV[2] = ttl in ms
 * Sweeps expired members, extends this node's lease, and lets the whole key expire with the
 * longest lease, so a cluster whose nodes all died leaves nothing behind.
 */
const HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]))
return 1
`;

/**
 * Live nodes.
 * KEYS[1] = the nodes sorted set. Returns members whose lease is in the future (Redis clock).
 */
const LIVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`;

/** NodeRegistry on Redis; leases use the Redis clock so nodes need no clock agreement. */
export class RedisNodeRegistry implements NodeRegistry {
  private readonly key: string;
  constructor(
    private readonly redis: Redis,
    keyPrefix: string,
  ) {
    // Hash tag: every registry key of one deployment lives in one Redis Cluster slot.
    this.key = `${keyPrefix}{registry}:nodes`;
  }

  async heartbeat(nodeId: string, ttlMs: number): Promise<void> {
    await this.redis.eval(HEARTBEAT, 1, this.key, nodeId, String(Math.ceil(ttlMs)));
  }

  async leave(nodeId: string): Promise<void> {
    await this.redis.zrem(this.key, nodeId);
  }

  async liveNodes(): Promise<string[]> {
    const nodes = (await this.redis.eval(LIVE, 1, this.key)) as string[];
    return nodes.sort();
  }
}
