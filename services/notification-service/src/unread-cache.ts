import type { Redis } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';
import type { UnreadCount } from './unread-counts.js';

/** A cached count as stored: JSON `{count, generation}`; anything else (such as an older plain number) is a miss. */
function parseCached(userId: string, value: string | null): UnreadCount | undefined {
  if (value === null) return undefined;
  try {
    const { count, generation } = JSON.parse(value) as Partial<UnreadCount>;
    if (Number.isSafeInteger(count) && Number.isSafeInteger(generation)) {
      return { userId, count: count as number, generation: generation as number };
    }
  } catch {
    // Not JSON: a miss.
  }
  return undefined;
}

/**
 * Unread counts cached in Redis. Each user has a cache generation number (a Redis counter, apart
 * from the count's own `generation` in PostgreSQL); the count is cached under the current cache
 * generation, and a change bumps it after its commit. A reader that loaded a count before a
 * commit can only store it under the old cache generation, which nobody reads any more, so a
 * stale count is never served (plain DEL would race with such a reader).
 * When Redis is unavailable, counts come from the database.
 */
export class UnreadCache {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly logger: Pick<FastifyBaseLogger, 'warn'>,
    private readonly ttlSeconds = 3600,
  ) {}

  private genKey(userId: string) {
    return `${this.prefix}notifications:unread-gen:${userId}`;
  }

  /** `userId`'s count from the cache, or from `load` (then cached); `cached`: it came from Redis. */
  async get(userId: string, load: () => Promise<UnreadCount>): Promise<{ count: UnreadCount; cached: boolean }> {
    let key: string;
    try {
      key = `${this.prefix}notifications:unread:${userId}:${(await this.redis.get(this.genKey(userId))) ?? '0'}`;
      const hit = parseCached(userId, await this.redis.get(key));
      if (hit) return { count: hit, cached: true };
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'unread cache unavailable; reading the database');
      return { count: await load(), cached: false };
    }
    const count = await load();
    const value = JSON.stringify({ count: count.count, generation: count.generation });
    await this.redis.set(key, value, 'EX', this.ttlSeconds).catch(() => undefined);
    return { count, cached: false };
  }

  /** Call after the change committed. */
  async invalidate(userIds: Iterable<string>): Promise<void> {
    const pipeline = this.redis.pipeline();
    for (const userId of new Set(userIds)) pipeline.incr(this.genKey(userId)).expire(this.genKey(userId), 86_400 * 7);
    await pipeline.exec().catch((err: unknown) => {
      this.logger.warn({ err: (err as Error).message }, 'unread cache invalidation failed');
    });
  }
}
