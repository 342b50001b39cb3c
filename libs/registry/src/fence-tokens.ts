import type { Redis } from 'ioredis';
import { script } from './scripts.js';

/**
 * Issues fencing tokens (AppendFence.token) for the partition assignments of a consumer group:
 * each token is greater than every token issued before it for the same scope, whichever process
 * asked. Tokens are µs of the issuer's clock (pushed past the last one issued), so they keep
 * growing even after the issuer lost its count (expiry, restart), as long as its clock does.
 */
export interface FenceTokens {
  /** A new token for `scope` (e.g. the group id): a non-negative safe integer. Rejects when the store fails. */
  next(scope: string): Promise<number>;
}

/** How long a scope's last token is kept after it was issued (ms): tokens follow the clock anyway. */
const LAST_TOKEN_TTL_MS = 86_400_000;

/**
 * KEYS[1] = the scope's last token; ARGV[1] = its ttl ms. Returns max(Redis' clock in µs, last + 1)
 * and keeps it as the last token.
 */
const NEXT_TOKEN = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local token = string.format('%d', math.max(now, last + 1))
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return token
`;

/** FenceTokens on Redis: one key per scope (`<prefix>fence-token:{<scope>}`) that expires a day after its last token. */
export class RedisFenceTokens implements FenceTokens {
  private readonly run;
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
  ) {
    this.run = script(redis, 'rippleFenceToken', 1, NEXT_TOKEN);
  }

  async next(scope: string): Promise<number> {
    const token = await this.run(this.redis, `${this.keyPrefix}fence-token:{${scope}}`, String(LAST_TOKEN_TTL_MS));
    return Number(token);
  }
}

/** In-memory FenceTokens: single process only (unit tests, embedded mode). Same semantics as RedisFenceTokens. */
export class MemoryFenceTokens implements FenceTokens {
  private readonly last = new Map<string, number>();
  constructor(private readonly now: () => number = Date.now) {}

  /** Simulates losing a scope's last token (expiry, restart of the store). */
  forget(scope: string): void {
    this.last.delete(scope);
  }

  next(scope: string): Promise<number> {
    const token = Math.max(Math.floor(this.now() * 1000), (this.last.get(scope) ?? 0) + 1);
    this.last.set(scope, token);
    return Promise.resolve(token);
  }
}
