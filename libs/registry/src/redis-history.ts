import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { History, Recovery, StreamPosition } from './history.js';

/**
 * Append one entry.
 * KEYS[1] = the channel's stream, KEYS[2] = the channel's meta hash (epoch, added)
 * ARGV[1] = payload, ARGV[2] = approximate max length, ARGV[3] = ttl ms, ARGV[4] = new epoch
 * The epoch is kept while the meta hash lives; a lost hash (expiry, Redis restart) starts a new
 * one. `added` counts every entry ever appended, so readers can tell whether any were trimmed.
 */
const APPEND = `
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[4]
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'added', 0)
end
redis.call('HINCRBY', KEYS[2], 'added', 1)
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'p', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return {id, epoch}
`;

/**
 * Current position.
 * KEYS[1] = stream, KEYS[2] = meta; ARGV[1] = ttl ms, ARGV[2] = new epoch (used when none exists)
 */
const POSITION = `
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[2], 'epoch', epoch, 'added', 0)
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local offset = '0-0'
if last[1] then offset = last[1][1] end
return {offset, epoch}
`;

/**
 * Replay after an offset.
 * KEYS[1] = stream, KEYS[2] = meta; ARGV[1] = client offset, ARGV[2] = client epoch, ARGV[3] = limit
 * Returns {status, epoch, lastOffset, entries...}: status 1 = complete, 0 = cannot recover.
 * Complete means: same epoch, and either the client's entry is still the start of what is kept,
 * or the client had nothing (0-0) and nothing was ever trimmed; and at most `limit` entries follow.
 */
const SINCE = `
local epoch = redis.call('HGET', KEYS[2], 'epoch')
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local top = '0-0'
if last[1] then top = last[1][1] end
if (not epoch) or epoch ~= ARGV[2] then return {0, epoch or '', top} end
local limit = tonumber(ARGV[3])
local out = {1, epoch, top}
if ARGV[1] == '0-0' then
  local added = tonumber(redis.call('HGET', KEYS[2], 'added') or '0')
  if added ~= redis.call('XLEN', KEYS[1]) then return {0, epoch, top} end
  local rows = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', limit + 1)
  if #rows > limit then return {0, epoch, top} end
  for _, row in ipairs(rows) do table.insert(out, row[1]); table.insert(out, row[2][2]) end
  return out
end
local rows = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', limit + 2)
if (not rows[1]) or rows[1][1] ~= ARGV[1] then return {0, epoch, top} end
if #rows > limit + 1 then return {0, epoch, top} end
for i = 2, #rows do table.insert(out, rows[i][1]); table.insert(out, rows[i][2][2]) end
return out
`;

export interface RedisHistoryOptions {
  /** Entries kept per channel (approximately: Redis trims in whole nodes). */
  readonly maxLength: number;
  /** A channel's history expires this long after its last event. */
  readonly ttlMs: number;
}

/** History on Redis Streams; one stream and one meta hash per channel, in one cluster slot. */
export class RedisHistory implements History {
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly opts: RedisHistoryOptions,
  ) {}

  private keys(channel: string): [string, string] {
    return [`${this.keyPrefix}history:{${channel}}`, `${this.keyPrefix}history-meta:{${channel}}`];
  }

  async append(channel: string, payload: string): Promise<StreamPosition> {
    const [offset, epoch] = (await this.redis.eval(
      APPEND,
      2,
      ...this.keys(channel),
      payload,
      String(this.opts.maxLength),
      String(this.opts.ttlMs),
      newEpoch(),
    )) as [string, string];
    return { offset, epoch };
  }

  async position(channel: string): Promise<StreamPosition> {
    const [offset, epoch] = (await this.redis.eval(
      POSITION,
      2,
      ...this.keys(channel),
      String(this.opts.ttlMs),
      newEpoch(),
    )) as [string, string];
    return { offset, epoch };
  }

  async since(channel: string, since: StreamPosition, limit: number): Promise<Recovery> {
    const reply = (await this.redis.eval(
      SINCE,
      2,
      ...this.keys(channel),
      since.offset,
      since.epoch,
      String(limit),
    )) as [number, string, string, ...string[]];
    const [status, epoch, top, ...flat] = reply;
    const entries = [];
    for (let i = 0; i + 1 < flat.length; i += 2) entries.push({ offset: flat[i] ?? '', payload: flat[i + 1] ?? '' });
    return { recovered: status === 1, entries, position: { offset: top, epoch } };
  }
}

function newEpoch(): string {
  return randomBytes(6).toString('hex');
}
