import type { Redis } from 'ioredis';
import { channelNodesKey, isComplete, registryMarkerKey } from './directory.js';
import type { Directory } from './directory.js';
import { FencedAppendError } from './history.js';
import type { AppendFence, History, HistoryAppend, StreamPosition } from './history.js';
import { LIVE_MEMBERS, RedisLeasedSets } from './leased-set.js';
import {
  APPEND_FROM,
  epochSuffix,
  fenceArgs,
  historyAppendKeys,
  historyKeys,
  indicesByChannel,
  spreadPositions,
} from './redis-history.js';
import type { RedisHistoryOptions } from './redis-history.js';
import { execAll, script } from './scripts.js';
import calculateSlot from 'cluster-key-slot';

/** What routing a batch of frames learnt: where each landed in history, and who holds each channel. */
export interface RoutedBatch {
  /** The position of each entry, in the order given. */
  readonly positions: StreamPosition[];
  /** The nodes that hold subscribers of each channel of the batch, read after its appends. */
  readonly nodes: Map<string, string[]>;
  /** False while the registry may be missing entries (see `Directory.lookup`): send to every node. */
  readonly complete: boolean;
}

/**
 * The registry work of routing one batch: `History.appendMany` then `Directory.lookup` of the
 * batch's channels, with the same guarantee as doing them in that order: a channel's nodes are
 * read after its entries were appended, so a node that registers for the channel later reads a
 * position that already includes them.
 */
export interface RouteLog {
  /**
   * Appends the entries (each channel's in the given order; an entry whose `id` its channel got
   * recently keeps the offset it got then, as `History.appendMany`) and looks up their channels'
   * nodes. With a `fence`, rejects with a FencedAppendError when any channel refused it (as
   * `History.appendMany`: those channels appended nothing, the others did).
   */
  appendAndLookup(entries: readonly HistoryAppend[], fence?: AppendFence): Promise<RoutedBatch>;
}

/** Any History and Directory, one after the other (two round trips on Redis; the memory adapters). */
export class SequentialRouteLog implements RouteLog {
  constructor(
    private readonly history: History,
    private readonly directory: Directory,
  ) {}

  async appendAndLookup(entries: readonly HistoryAppend[], fence?: AppendFence): Promise<RoutedBatch> {
    const positions = await this.history.appendMany(entries, fence);
    const { nodes, complete } = await this.directory.lookup([...new Set(entries.map((e) => e.channel))]);
    return { positions, nodes, complete };
  }
}

/**
 * KEYS = for each channel of the call, its history stream, meta hash and recent ids, and its
 * leased set of nodes (four keys; a channel is the hash tag of its four, so they share a cluster
 * slot). ARGV[1] = approximate max length, ARGV[2] = ttl ms, ARGV[3] = random epoch suffix,
 * ARGV[4] = fence field ('' for none), ARGV[5] = fencing token (see `append_to`), then for each
 * channel in KEYS order: the number of its entries, then the entries in order, each an id ('' for
 * none) then a payload.
 * Appends each channel's entries (as RedisHistory does), then reads the nodes whose lease has not
 * run out (as LeasedDirectory does); returns, for each channel in order: first offset, epoch,
 * number of redelivery values, the redeliveries (index, offset pairs), number of nodes, the nodes
 * (epoch '' for a channel that refused the fence, which appended nothing).
 * Redis' clock is read once per call.
 */
const APPEND_AND_LOOKUP = `${APPEND_FROM}${LIVE_MEMBERS}
local t = redis.call('TIME')
local out = {}
local a = 6
for k = 1, #KEYS, 4 do
  local n = tonumber(ARGV[a])
  local first, epoch, redelivered = append_to(KEYS[k], KEYS[k + 1], KEYS[k + 2], a + 1, a + 2 * n, ARGV[1], ARGV[2], ARGV[3], t, ARGV[4], ARGV[5])
  a = a + 2 * n + 1
  local holders = live_members_at(KEYS[k + 3], t)
  out[#out + 1] = first
  out[#out + 1] = epoch
  out[#out + 1] = #redelivered
  for _, value in ipairs(redelivered) do out[#out + 1] = value end
  out[#out + 1] = #holders
  for _, node in ipairs(holders) do out[#out + 1] = node end
end
return out
`;

export interface RedisRouteLogOptions extends RedisHistoryOptions {
  /** The directory's lease (ms): the registry is complete once its marker is this old. */
  readonly leaseMs: number;
  /**
   * Whether one script call may take channels of different cluster slots: true (the default) on a
   * single Redis server, false on Redis Cluster, where only channels of the same slot share a call.
   */
  readonly crossSlot?: boolean;
  /** Most channels (default 200) and entries (default 2,000) in one script call, so Redis never blocks long. */
  readonly channelsPerCall?: number;
  readonly entriesPerCall?: number;
}

/**
 * RouteLog on the keys of RedisHistory and LeasedDirectory over RedisLeasedSets (same prefix):
 * the batch's channels go to Redis in a few script calls (each atomic, up to `channelsPerCall`
 * channels of any slot, or of one slot on Redis Cluster), all in one pipeline with the registry
 * marker's age: one round trip per batch, however many channels. A call per channel cost the
 * gateway ~80 µs of client CPU per channel (ioredis command objects) and Redis a script
 * invocation each.
 */
export class RedisRouteLog implements RouteLog {
  private readonly run;
  private readonly sets: RedisLeasedSets;
  private readonly channelsPerCall: number;
  private readonly entriesPerCall: number;
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly opts: RedisRouteLogOptions,
  ) {
    this.run = script(redis, 'rippleAppendAndLookupMany', undefined, APPEND_AND_LOOKUP);
    this.sets = new RedisLeasedSets(redis);
    this.channelsPerCall = opts.channelsPerCall ?? 200;
    this.entriesPerCall = opts.entriesPerCall ?? 2000;
  }

  /** The batch's channels (with their entries' indices, in order), in groups of one script call each. */
  private calls(entries: readonly { channel: string }[]): [string, number[]][][] {
    const bySlot = new Map<number, [string, number[]][]>();
    for (const group of indicesByChannel(entries)) {
      const slot = this.opts.crossSlot === false ? calculateSlot(historyKeys(this.keyPrefix, group[0])[0]) : 0;
      const list = bySlot.get(slot);
      if (list) list.push(group);
      else bySlot.set(slot, [group]);
    }
    const calls: [string, number[]][][] = [];
    for (const groups of bySlot.values()) {
      let call: [string, number[]][] = [];
      let size = 0;
      for (const group of groups) {
        if (call.length > 0 && (call.length >= this.channelsPerCall || size + group[1].length > this.entriesPerCall)) {
          calls.push(call);
          call = [];
          size = 0;
        }
        call.push(group);
        size += group[1].length;
      }
      if (call.length > 0) calls.push(call);
    }
    return calls;
  }

  async appendAndLookup(entries: readonly HistoryAppend[], fence?: AppendFence): Promise<RoutedBatch> {
    if (entries.length === 0) return { positions: [], nodes: new Map(), complete: true };
    const calls = this.calls(entries);
    const pipeline = this.redis.pipeline();
    const suffix = epochSuffix();
    const head = [String(this.opts.maxLength), String(this.opts.ttlMs), suffix, ...fenceArgs(fence)];
    for (const call of calls) {
      const keys: string[] = [];
      const args: string[] = [...head];
      for (const [channel, indices] of call) {
        keys.push(...historyAppendKeys(this.keyPrefix, channel), channelNodesKey(this.keyPrefix, channel));
        args.push(String(indices.length));
        for (const i of indices) args.push(entries[i]?.id ?? '', entries[i]?.payload ?? '');
      }
      this.run.queue(pipeline, String(keys.length), ...keys, ...args);
    }
    const [replies, age] = await Promise.all([
      execAll(pipeline) as Promise<(string | number)[][]>,
      this.sets.markAge(registryMarkerKey(this.keyPrefix)),
    ]);
    const positions: StreamPosition[] = new Array<StreamPosition>(entries.length);
    const nodes = new Map<string, string[]>();
    const fenced: string[] = [];
    calls.forEach((call, c) => {
      const reply = replies[c] ?? [];
      let at = 0;
      for (const [channel, indices] of call) {
        const first = String(reply[at] ?? '0');
        const epoch = String(reply[at + 1] ?? '');
        if (epoch === '') fenced.push(channel);
        const redelivered = Number(reply[at + 2] ?? 0);
        spreadPositions(positions, indices, first, epoch, reply.slice(at + 3, at + 3 + redelivered));
        at += 3 + redelivered;
        const count = Number(reply[at] ?? 0);
        nodes.set(channel, (reply.slice(at + 1, at + 1 + count) as string[]).sort());
        at += 1 + count;
      }
    });
    if (fence && fenced.length > 0) throw new FencedAppendError(fence, fenced);
    return { positions, nodes, complete: isComplete(age, this.opts.leaseMs) };
  }
}
