import type { Redis } from 'ioredis';
import { execAll, script } from './scripts.js';

/** Keys `RedisLeasedSets.addMany` renews per round trip. */
export const RENEW_CHUNK = 256;

/*
 * A "leased set" is a sorted set whose members carry their lease expiry (ms, Redis clock) as
 * score. Members whose lease ran out are swept on every write and ignored on every read, and the
 * key expires with its longest lease, so whatever a dead node leaves behind disappears by itself.
 * Each script touches one key, so every call is safe in Redis Cluster.
 */

/**
 * `lease_add_at(key, ttl, now, first, last)` adds or renews the members ARGV[first..last] of the
 * leased set `key` for `ttl` ms from `now` (ms, Redis clock) and returns its number of live members.
 */
export const LEASE_ADD = `
local function lease_add_at(key, ttl, now, first, last)
  local untilMs = now + tonumber(ttl)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  for i = first, last do redis.call('ZADD', key, untilMs, ARGV[i]) end
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', key, tonumber(top[2]))
  return redis.call('ZCARD', key)
end
`;

/**
 * KEYS[1] = leased set; ARGV[1] = ttl ms; ARGV[2..] = members
 * Adds or renews the members; returns the number of live members.
 */
const ADD = `${LEASE_ADD}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return lease_add_at(KEYS[1], ARGV[1], now, 2, #ARGV)
`;

/**
 * KEYS[1] = leased set; ARGV[1..] = members
 * Removes the members; returns the number of live members left.
 */
export const LEASE_REMOVE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 1, #ARGV do redis.call('ZREM', KEYS[1], ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
`;

/** `live_members(key)`: the members of the leased set `key` whose lease has not run out. */
export const LIVE_MEMBERS = `
local function live_members_at(key, t)
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return redis.call('ZRANGEBYSCORE', key, '(' .. now, '+inf')
end
local function live_members(key)
  return live_members_at(key, redis.call('TIME'))
end
`;

/** KEYS[1] = leased set. Returns the live members. */
const LIVE = `${LIVE_MEMBERS}
return live_members(KEYS[1])
`;

/** KEYS[1] = marker. Sets it to Redis' clock (ms) unless it exists; returns its value. */
const MARK = `
local v = redis.call('GET', KEYS[1])
if v then return tonumber(v) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], now)
return now
`;

/** KEYS[1] = marker. Returns its age in ms (Redis clock), or -1 when it does not exist. */
const MARK_AGE = `
local v = redis.call('GET', KEYS[1])
if not v then return -1 end
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(v)
`;

export class RedisLeasedSets {
  private readonly scripts;
  constructor(private readonly redis: Redis) {
    this.scripts = {
      add: script(redis, 'rippleLeaseAdd', 1, ADD),
      remove: script(redis, 'rippleLeaseRemove', 1, LEASE_REMOVE),
      live: script(redis, 'rippleLeaseLive', 1, LIVE),
      mark: script(redis, 'rippleMark', 1, MARK),
      markAge: script(redis, 'rippleMarkAge', 1, MARK_AGE),
    };
  }

  async add(key: string, ttlMs: number, members: readonly string[]): Promise<number> {
    return (await this.scripts.add(this.redis, key, String(Math.ceil(ttlMs)), ...members)) as number;
  }

  async remove(key: string, members: readonly string[]): Promise<number> {
    return (await this.scripts.remove(this.redis, key, ...members)) as number;
  }

  async live(key: string): Promise<string[]> {
    return ((await this.scripts.live(this.redis, key)) as string[]).sort();
  }

  /**
   * Renews many keys (a heartbeat's), RENEW_CHUNK keys per round trip, one round trip after the
   * other. In one pipeline, a node's thousands of keys were encoded at once, then run by Redis at
   * once, then their replies parsed at once: tens of ms in which the gateway's event loop, and
   * every command behind them in Redis (a routed batch's script), waited. Rejects with the first
   * failure; the chunks before it were renewed.
   */
  async addMany(entries: readonly { key: string; members: readonly string[] }[], ttlMs: number): Promise<void> {
    const ttl = String(Math.ceil(ttlMs));
    for (let from = 0; from < entries.length; from += RENEW_CHUNK) {
      const pipeline = this.redis.pipeline();
      for (const e of entries.slice(from, from + RENEW_CHUNK))
        this.scripts.add.queue(pipeline, e.key, ttl, ...e.members);
      await execAll(pipeline);
    }
  }

  /** The live members of many keys (one round trip), in the order of `keys`. */
  async liveMany(keys: readonly string[]): Promise<string[][]> {
    if (keys.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const key of keys) this.scripts.live.queue(pipeline, key);
    return ((await execAll(pipeline)) as string[][]).map((members) => members.sort());
  }

  /**
   * A marker is a key that never expires, set to the time it was created: it tells how long the
   * store has kept its data (a restarted or flushed Redis lost it). `mark` creates it if missing
   * and resolves with its value (ms, the store's clock): a value that changed means lost data.
   */
  async mark(key: string): Promise<number> {
    return (await this.scripts.mark(this.redis, key)) as number;
  }

  /** Milliseconds since the marker was created, or undefined when it does not exist. */
  async markAge(key: string): Promise<number | undefined> {
    const age = (await this.scripts.markAge(this.redis, key)) as number;
    return age < 0 ? undefined : age;
  }
}

/** The same semantics in memory, with an injectable clock. */
export class MemoryLeasedSets {
  private readonly sets = new Map<string, Map<string, number>>();
  private readonly markers = new Map<string, number>();
  constructor(private readonly now: () => number = Date.now) {}

  private sweep(key: string): Map<string, number> {
    const set = this.sets.get(key) ?? new Map<string, number>();
    const now = this.now();
    for (const [member, until] of set) if (until <= now) set.delete(member);
    this.sets.set(key, set);
    return set;
  }

  add(key: string, ttlMs: number, members: readonly string[]): Promise<number> {
    const set = this.sweep(key);
    for (const m of members) set.set(m, this.now() + ttlMs);
    return Promise.resolve(set.size);
  }

  remove(key: string, members: readonly string[]): Promise<number> {
    const set = this.sweep(key);
    for (const m of members) set.delete(m);
    return Promise.resolve(set.size);
  }

  live(key: string): Promise<string[]> {
    return Promise.resolve([...this.sweep(key).keys()].sort());
  }

  async addMany(entries: readonly { key: string; members: readonly string[] }[], ttlMs: number): Promise<void> {
    for (const e of entries) await this.add(e.key, ttlMs, e.members);
  }

  liveMany(keys: readonly string[]): Promise<string[][]> {
    return Promise.all(keys.map((key) => this.live(key)));
  }

  mark(key: string): Promise<number> {
    const at = this.markers.get(key) ?? this.now();
    this.markers.set(key, at);
    return Promise.resolve(at);
  }

  markAge(key: string): Promise<number | undefined> {
    const at = this.markers.get(key);
    return Promise.resolve(at === undefined ? undefined : this.now() - at);
  }

  /** Simulates a store that restarted empty. */
  clear(): void {
    this.sets.clear();
    this.markers.clear();
  }
}

export type LeasedSets = Pick<RedisLeasedSets, 'add' | 'remove' | 'live' | 'addMany' | 'liveMany' | 'mark' | 'markAge'>;
