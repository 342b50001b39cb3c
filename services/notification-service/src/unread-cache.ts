import type { Redis } from 'ioredis';
import type { FastifyBaseLogger } from 'fastify';

/**
 * Unread counts cached in Redis. Each user has a generation number; the count is cached under
 * the current generation, and a change bumps the generation after its commit. A reader that
 * loaded a count before a commit can only store it under the old generation, which nobody reads
 * any more, so a stale count is never served (plain DEL would race with such a reader).
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

  async get(userId: string, load: () => Promise<number>): Promise<{ count: number; cached: boolean }> {
    let key: string;
    try {
      key = `${this.prefix}notifications:unread:${userId}:${(await this.redis.get(this.genKey(userId))) ?? '0'}`;
      const hit = await this.redis.get(key);
      if (hit !== null) return { count: Number(hit), cached: true };
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'unread cache unavailable; reading the database');
      return { count: await load(), cached: false };
    }
    const count = await load();
    await this.redis.set(key, String(count), 'EX', this.ttlSeconds).catch(() => undefined);
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
