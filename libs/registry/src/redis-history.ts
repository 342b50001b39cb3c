import { randomFillSync } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { AppendFence, History, HistoryAppend, Recovery, StreamPosition } from './history.js';
import { FencedAppendError, HISTORY_DEDUPE_WINDOW } from './history.js';
import { execAll, script } from './scripts.js';

/*
 * Every script below takes KEYS[1] = the channel's stream and KEYS[2] = its meta hash
 * (`epoch`, `seq` = the last offset given out, `until` = when its keys expire); both live in one
 * cluster slot and expire together `ttl` to `ttl * 17 / 16` ms after the channel's last event
 * (HISTORY_TTL_SLACK). Offsets are contiguous: stream ids are `<seq>-0`. The
 * epoch is kept while the meta hash lives; a lost hash (expiry, Redis restart) starts a new epoch
 * (Redis' clock: seconds in 8 hex digits and µs in 6, then ARGV's random suffix of 10 hex digits;
 * so a later epoch compares greater) and drops any stream left over.
 */
export const OPEN_EPOCH = `
local function open_epoch_of(stream, meta, ttl, suffix, t)
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch then return epoch end
  t = t or redis.call('TIME')
  epoch = string.format('%08x%06x', tonumber(t[1]), tonumber(t[2])) .. suffix
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', epoch, 'seq', 0)
  redis.call('PEXPIRE', meta, ttl)
  return epoch
end
local function open_epoch(ttl, suffix)
  return open_epoch_of(KEYS[1], KEYS[2], ttl, suffix)
end
`;

/** How many offsets a channel's recent ids may run past the dedupe window before they are trimmed. */
const IDS_TRIM_EVERY = 32;

/**
 * An append sets its channel's three keys to expire `ttl + ttl / HISTORY_TTL_SLACK` ms later and
 * skips that (three `PEXPIRE`s) while they still have at least `ttl` ms to live: a channel's
 * history expires between `ttl` and `ttl * (1 + 1 / HISTORY_TTL_SLACK)` ms after its last event,
 * and its keys' TTLs are written at most once per `ttl / HISTORY_TTL_SLACK` ms (a 16th of it).
 */
export const HISTORY_TTL_SLACK = 16;

/**
 * `append_to(stream, meta, ids, first, last, maxlen, ttl, suffix, t, fence, token)` appends the entries in
 * ARGV[first..last], each an id ('' for none) then a payload, to `stream` in order, with
 * contiguous offsets, and returns the first one's offset, the epoch and, for each entry whose id
 * the channel got within its last HISTORY_DEDUPE_WINDOW offsets (a redelivery: not appended
 * again), its index among the entries (from 0) and the offset it got then. `ids` is a sorted set
 * of recent ids by offset, marked with the epoch it belongs to (`@<epoch>`, score -1; a set of
 * another epoch is dropped); the mark and the entries' ids are read with one ZMSCORE. `maxlen` is
 * the approximate max length, `ttl` ms, `suffix` the random epoch suffix and `t` the TIME reply
 * (nil: read it). The meta hash's `until` is when (ms, Redis clock) the three keys expire: they
 * are set to expire again only when less than `ttl` is left (see HISTORY_TTL_SLACK), or when the
 * ids or the stream were started over (lost alone, e.g. evicted). `fence` is the meta hash's field
 * of the appending source (`fence:<source>`, '' for none) and `token` its fencing token
 * (AppendFence): when the field holds a higher token, nothing is appended and it returns '0', ''
 * (no epoch) and no redeliveries; otherwise the field keeps the higher of the two, so it lives
 * and expires with the meta hash. `append_from(first, maxlen, ttl, suffix, fence, token)` does it
 * on KEYS[1..3] with ARGV[first..].
 */
export const APPEND_FROM = `${OPEN_EPOCH}
local function append_to(stream, meta, ids, first, last, maxlen, ttl, suffix, t, fence, token)
  -- The fence is read with the state ('' is no field: nil) and checked before anything is written.
  local state = redis.call('HMGET', meta, 'epoch', 'seq', 'until', fence)
  local seen = tonumber(state[4])
  if fence ~= '' and seen and seen > tonumber(token) then return '0', '', {} end
  local fenced = {}
  if fence ~= '' and seen ~= tonumber(token) then fenced = {fence, token} end
  t = t or redis.call('TIME')
  local epoch = state[1]
  local seq = tonumber(state[2])
  local untilMs = tonumber(state[3])
  if not epoch then
    epoch = open_epoch_of(stream, meta, ttl, suffix, t)
    seq = 0
    untilMs = nil
  end
  local mark = '@' .. epoch
  local lookup = {mark}
  for i = first, last, 2 do
    if ARGV[i] ~= '' then lookup[#lookup + 1] = ARGV[i] end
  end
  -- In chunks: Lua's unpack takes a few thousand values at most.
  local scores = {}
  for c = 1, #lookup, 1000 do
    local part = redis.call('ZMSCORE', ids, unpack(lookup, c, math.min(c + 999, #lookup)))
    for k = 1, #part do scores[c + k - 1] = part[k] end
  end
  local known = {}
  if scores[1] then
    for k = 2, #lookup do
      if scores[k] then known[lookup[k]] = tonumber(scores[k]) end
    end
  else
    redis.call('DEL', ids)
    redis.call('ZADD', ids, -1, mark)
    untilMs = nil
  end
  local firstSeq = seq + 1
  local redelivered = {}
  for i = first, last, 2 do
    local id = ARGV[i]
    local offset = id ~= '' and known[id]
    if offset and offset > seq - ${HISTORY_DEDUPE_WINDOW} then
      redelivered[#redelivered + 1] = (i - first) / 2
      redelivered[#redelivered + 1] = string.format('%d', offset)
    else
      seq = seq + 1
      local entry = string.format('%d', seq) .. '-0'
      -- While the TTLs are left alone, NOMKSTREAM: a stream lost alone (evicted) is made again
      -- by a plain XADD and gets its TTL below, instead of living on without one.
      if not (untilMs and redis.call('XADD', stream, 'NOMKSTREAM', 'MAXLEN', '~', maxlen, entry, 'p', ARGV[i + 1])) then
        untilMs = nil
        redis.call('XADD', stream, 'MAXLEN', '~', maxlen, entry, 'p', ARGV[i + 1])
      end
      if id ~= '' then
        redis.call('ZADD', ids, seq, id)
        known[id] = seq
      end
    end
  end
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local ttlMs = tonumber(ttl)
  if untilMs and untilMs >= now + ttlMs then
    redis.call('HSET', meta, 'seq', string.format('%d', seq), unpack(fenced))
  else
    local life = ttlMs + math.floor(ttlMs / ${HISTORY_TTL_SLACK})
    redis.call('HSET', meta, 'seq', string.format('%d', seq), 'until', string.format('%d', now + life), unpack(fenced))
    redis.call('PEXPIRE', stream, life)
    redis.call('PEXPIRE', meta, life)
    redis.call('PEXPIRE', ids, life)
  end
  -- Ids older than the window are trimmed each time the offsets pass a multiple of ${IDS_TRIM_EVERY}, not on every
  -- call (one command less per channel of a call): the set holds at most the window, ${IDS_TRIM_EVERY} and one call's ids.
  if math.floor(seq / ${IDS_TRIM_EVERY}) ~= math.floor((firstSeq - 1) / ${IDS_TRIM_EVERY}) then
    redis.call('ZREMRANGEBYSCORE', ids, 0, seq - ${HISTORY_DEDUPE_WINDOW})
  end
  return string.format('%d', firstSeq), epoch, redelivered
end
local function append_from(first, maxlen, ttl, suffix, fence, token)
  return append_to(KEYS[1], KEYS[2], KEYS[3], first, #ARGV, maxlen, ttl, suffix, nil, fence, token)
end
`;

/**
 * Append entries. KEYS = stream, meta hash, recent ids. ARGV[1] = approximate max length, ARGV[2]
 * = ttl ms, ARGV[3] = random epoch suffix, ARGV[4] = fence field ('' for none), ARGV[5] = fencing
 * token, ARGV[6..] = entries (at least one), in order, each an id ('' for none) then a payload.
 * Returns {first offset, epoch, {index, offset}* of redeliveries}; epoch '' when fenced.
 */
const APPEND = `${APPEND_FROM}
local first, epoch, redelivered = append_from(6, ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5])
return {first, epoch, redelivered}
`;

/** Current position. ARGV[1] = ttl ms, ARGV[2] = random epoch suffix. Returns {offset, epoch}. */
const POSITION = `${OPEN_EPOCH}
local epoch = open_epoch(ARGV[1], ARGV[2])
return {redis.call('HGET', KEYS[2], 'seq'), epoch}
`;

/**
 * Replay after an offset. ARGV[1] = client offset, ARGV[2] = client epoch, ARGV[3] = limit,
 * ARGV[4] = ttl ms, ARGV[5] = random epoch suffix.
 * Returns {status, epoch, top, offset1, payload1, ...}: status 1 = complete, 0 = cannot recover.
 * Complete means: same epoch, an offset not past the top, at most `limit` entries after it, and
 * all of them still kept (nothing trimmed).
 */
const SINCE = `${OPEN_EPOCH}
local epoch = open_epoch(ARGV[4], ARGV[5])
local topText = redis.call('HGET', KEYS[2], 'seq')
local top = tonumber(topText)
local from = tonumber(ARGV[1])
if epoch ~= ARGV[2] or from > top or top - from > tonumber(ARGV[3]) then return {0, epoch, topText} end
local out = {1, epoch, topText}
if from == top then return out end
local rows = redis.call('XRANGE', KEYS[1], string.format('%d', from + 1) .. '-0', '+')
if #rows ~= top - from then return {0, epoch, topText} end
for _, row in ipairs(rows) do
  table.insert(out, string.sub(row[1], 1, -3))
  table.insert(out, row[2][2])
end
return out
`;

export interface RedisHistoryOptions {
  /** Entries kept per channel (approximately: Redis trims in whole nodes). */
  readonly maxLength: number;
  /** A channel's history expires this long after its last event. */
  readonly ttlMs: number;
}

/** The stream and meta hash of a channel's history (one cluster slot: the channel is the hash tag). */
export function historyKeys(keyPrefix: string, channel: string): [string, string] {
  return [`${keyPrefix}history:{${channel}}`, `${keyPrefix}history-meta:{${channel}}`];
}

/** The keys an append takes: the stream, the meta hash and the recent ids (one cluster slot). */
export function historyAppendKeys(keyPrefix: string, channel: string): [string, string, string] {
  return [...historyKeys(keyPrefix, channel), `${keyPrefix}history-ids:{${channel}}`];
}

/** The append scripts' fence arguments: the meta hash's field of the source ('' for none), the token. */
export function fenceArgs(fence: AppendFence | undefined): [string, string] {
  if (!fence) return ['', '0'];
  if (!Number.isSafeInteger(fence.token) || fence.token < 0)
    throw new RangeError(`fencing token must be a non-negative safe integer, got ${fence.token}`);
  return [`fence:${fence.source}`, String(fence.token)];
}

/** The indices of `entries` grouped by channel, each group in the given order. */
export function indicesByChannel(entries: readonly { channel: string }[]): Map<string, number[]> {
  const groups = new Map<string, number[]>();
  entries.forEach(({ channel }, i) => {
    const group = groups.get(channel);
    if (group) group.push(i);
    else groups.set(channel, [i]);
  });
  return groups;
}

/**
 * Positions of a channel's appended entries, as the append scripts answer: the first offset, the
 * epoch, and `redelivered` (flat index-among-the-group, offset pairs) for the entries that kept an
 * earlier offset; the others follow contiguously from `first`. Written into `positions` at the
 * group's indices.
 */
export function spreadPositions(
  positions: StreamPosition[],
  indices: readonly number[],
  first: string,
  epoch: string,
  redelivered: readonly (string | number)[] = [],
): void {
  const kept = new Map<number, string>();
  for (let i = 0; i + 1 < redelivered.length; i += 2) kept.set(Number(redelivered[i]), String(redelivered[i + 1]));
  let next = Number(first);
  indices.forEach((index, k) => (positions[index] = { offset: kept.get(k) ?? String(next++), epoch }));
}

/** History on Redis Streams; one stream and one meta hash per channel, in one cluster slot. */
export class RedisHistory implements History {
  private readonly scripts;
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly opts: RedisHistoryOptions,
  ) {
    this.scripts = {
      append: script(redis, 'rippleHistoryAppend', 3, APPEND),
      position: script(redis, 'rippleHistoryPosition', 2, POSITION),
      since: script(redis, 'rippleHistorySince', 2, SINCE),
    };
  }

  private keys(channel: string): [string, string] {
    return historyKeys(this.keyPrefix, channel);
  }

  /** The append script's arguments: keys, the fence, then the entries as id ('' for none), payload pairs. */
  private appendArgs(
    channel: string,
    entries: readonly { payload: string; id?: string }[],
    fence: AppendFence | undefined,
  ): string[] {
    const args = [
      ...historyAppendKeys(this.keyPrefix, channel),
      String(this.opts.maxLength),
      String(this.opts.ttlMs),
      epochSuffix(),
      ...fenceArgs(fence),
    ];
    for (const e of entries) args.push(e.id ?? '', e.payload);
    return args;
  }

  async append(channel: string, payload: string): Promise<StreamPosition> {
    const [offset, epoch] = (await this.scripts.append(
      this.redis,
      ...this.appendArgs(channel, [{ payload }], undefined),
    )) as [string, string];
    return { offset, epoch };
  }

  /** One script call per channel, all in one pipeline (one round trip). */
  async appendMany(entries: readonly HistoryAppend[], fence?: AppendFence): Promise<StreamPosition[]> {
    if (entries.length === 0) return [];
    const groups = [...indicesByChannel(entries)];
    const pipeline = this.redis.pipeline();
    for (const [channel, indices] of groups) {
      this.scripts.append.queue(
        pipeline,
        ...this.appendArgs(
          channel,
          indices.map((i) => entries[i] ?? { payload: '' }),
          fence,
        ),
      );
    }
    const replies = (await execAll(pipeline)) as [string, string, (string | number)[]][];
    const positions: StreamPosition[] = new Array<StreamPosition>(entries.length);
    const fenced: string[] = [];
    groups.forEach(([channel, indices], g) => {
      const [first, epoch, redelivered] = replies[g] ?? ['0', '', []];
      if (epoch === '') fenced.push(channel);
      spreadPositions(positions, indices, first, epoch, redelivered);
    });
    if (fence && fenced.length > 0) throw new FencedAppendError(fence, fenced);
    return positions;
  }

  async position(channel: string): Promise<StreamPosition> {
    const [offset, epoch] = (await this.scripts.position(
      this.redis,
      ...this.keys(channel),
      String(this.opts.ttlMs),
      epochSuffix(),
    )) as [string, string];
    return { offset, epoch };
  }

  async since(channel: string, since: StreamPosition, limit: number): Promise<Recovery> {
    const reply = (await this.scripts.since(
      this.redis,
      ...this.keys(channel),
      since.offset,
      since.epoch,
      String(limit),
      String(this.opts.ttlMs),
      epochSuffix(),
    )) as [number, string, string, ...string[]];
    const [status, epoch, top, ...flat] = reply;
    const entries = [];
    for (let i = 0; i + 1 < flat.length; i += 2) entries.push({ offset: flat[i] ?? '', payload: flat[i + 1] ?? '' });
    return { recovered: status === 1, entries, position: { offset: top, epoch } };
  }
}

// Random bytes for epoch suffixes, drawn a few KiB at a time: every append and position call
// carries one (in case its script has to open an epoch), and one randomBytes call each showed up
// in the gateway's profile under a subscribe storm.
const suffixPool = Buffer.alloc(4096);
let suffixUsed = suffixPool.length;

/** 10 random hex digits: the suffix of an epoch a script may have to open. */
export function epochSuffix(): string {
  if (suffixUsed + 5 > suffixPool.length) {
    randomFillSync(suffixPool);
    suffixUsed = 0;
  }
  suffixUsed += 5;
  return suffixPool.toString('hex', suffixUsed - 5, suffixUsed);
}
