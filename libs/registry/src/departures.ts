import type { Redis } from 'ioredis';

/**
 * When each user last left each chat room, so that a subscription token signed before that
 * (chat-service proved a membership that has since ended) is refused without asking the database.
 * A mark only has to outlive the longest subscription token: it expires after `ttlMs`.
 */
export interface Departures {
  /** Records that `userId` left `roomId` at `atMs` (ms since the epoch); an earlier mark never replaces a later one. */
  markLeft(roomId: string, userId: string, atMs: number): Promise<void>;
  /** When `userId` last left `roomId` (ms since the epoch), or undefined when no mark is kept. */
  leftAt(roomId: string, userId: string): Promise<number | undefined>;
}

/**
 * KEYS[1] = departure mark; ARGV[1] = left at (ms); ARGV[2] = ttl ms
 * Keeps the later of the stored and the given time (a redelivered or reordered event never moves
 * the mark back) and renews the key's expiry. Returns the mark.
 */
const MARK_LEFT = `
local at = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if current > at then at = current end
redis.call('SET', KEYS[1], at, 'PX', tonumber(ARGV[2]))
return at
`;

export class RedisDepartures implements Departures {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly ttlMs: number,
  ) {}

  private key = (roomId: string, userId: string): string => `${this.keyPrefix}left:{chat:${roomId}}:${userId}`;

  async markLeft(roomId: string, userId: string, atMs: number): Promise<void> {
    await this.redis.eval(MARK_LEFT, 1, this.key(roomId, userId), String(Math.floor(atMs)), String(this.ttlMs));
  }

  async leftAt(roomId: string, userId: string): Promise<number | undefined> {
    const value = await this.redis.get(this.key(roomId, userId));
    return value === null ? undefined : Number(value);
  }
}

/** Departures in memory, with an injectable clock: a single node only (and unit tests). */
export class MemoryDepartures implements Departures {
  private readonly marks = new Map<string, { atMs: number; until: number }>();
  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  markLeft(roomId: string, userId: string, atMs: number): Promise<void> {
    const key = `${roomId}\n${userId}`;
    const current = (this.marks.get(key)?.until ?? 0) > this.now() ? this.marks.get(key)?.atMs : undefined;
    this.marks.set(key, { atMs: Math.max(current ?? -1, Math.floor(atMs)), until: this.now() + this.ttlMs });
    return Promise.resolve();
  }

  leftAt(roomId: string, userId: string): Promise<number | undefined> {
    const mark = this.marks.get(`${roomId}\n${userId}`);
    return Promise.resolve(mark && mark.until > this.now() ? mark.atMs : undefined);
  }
}
