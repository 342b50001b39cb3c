import type { Redis } from 'ioredis';
import { channelNodesKey, isComplete, registryMarkerKey } from './directory.js';
import type { Directory } from './directory.js';
import type { History, StreamPosition } from './history.js';
import { LIVE_MEMBERS, RedisLeasedSets } from './leased-set.js';
import { APPEND_FROM, epochSuffix, historyKeys, indicesByChannel, spreadPositions } from './redis-history.js';
import type { RedisHistoryOptions } from './redis-history.js';
import { execAll, script } from './scripts.js';

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
  /** Appends the entries (each channel's in the given order) and looks up their channels' nodes. */
  appendAndLookup(entries: readonly { channel: string; payload: string }[]): Promise<RoutedBatch>;
}

/** Any History and Directory, one after the other (two round trips on Redis; the memory adapters). */
export class SequentialRouteLog implements RouteLog {
  constructor(
    private readonly history: History,
    private readonly directory: Directory,
  ) {}

  async appendAndLookup(entries: readonly { channel: string; payload: string }[]): Promise<RoutedBatch> {
    const positions = await this.history.appendMany(entries);
    const { nodes, complete } = await this.directory.lookup([...new Set(entries.map((e) => e.channel))]);
    return { positions, nodes, complete };
  }
}

/**
 * KEYS[1] = the channel's history stream, KEYS[2] = its meta hash, KEYS[3] = its leased set of
 * nodes (one cluster slot: the channel is the hash tag of all three). ARGV[1] = approximate max
 * length, ARGV[2] = ttl ms, ARGV[3] = random epoch suffix, ARGV[4..] = payloads, in order.
 * Appends the payloads (as RedisHistory does), then returns {first offset, epoch, node...} with
 * the nodes whose lease has not run out (as LeasedDirectory reads them).
 */
const APPEND_AND_LOOKUP = `${APPEND_FROM}${LIVE_MEMBERS}
local first, epoch = append_from(4, ARGV[1], ARGV[2], ARGV[3])
local out = {first, epoch}
for _, node in ipairs(live_members(KEYS[3])) do table.insert(out, node) end
return out
`;

/**
 * RouteLog on the keys of RedisHistory and LeasedDirectory over RedisLeasedSets (same prefix):
 * one script call per channel of the batch, each atomic, all in one pipeline with the registry
 * marker's age: one round trip per batch, however many channels.
 */
export class RedisRouteLog implements RouteLog {
  private readonly run;
  private readonly sets: RedisLeasedSets;
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly opts: RedisHistoryOptions & {
      /** The directory's lease (ms): the registry is complete once its marker is this old. */
      readonly leaseMs: number;
    },
  ) {
    this.run = script(redis, 'rippleAppendAndLookup', 3, APPEND_AND_LOOKUP);
    this.sets = new RedisLeasedSets(redis);
  }

  async appendAndLookup(entries: readonly { channel: string; payload: string }[]): Promise<RoutedBatch> {
    if (entries.length === 0) return { positions: [], nodes: new Map(), complete: true };
    const groups = [...indicesByChannel(entries)];
    const pipeline = this.redis.pipeline();
    for (const [channel, indices] of groups) {
      this.run.queue(
        pipeline,
        ...historyKeys(this.keyPrefix, channel),
        channelNodesKey(this.keyPrefix, channel),
        String(this.opts.maxLength),
        String(this.opts.ttlMs),
        epochSuffix(),
        ...indices.map((i) => entries[i]?.payload ?? ''),
      );
    }
    const [replies, age] = await Promise.all([
      execAll(pipeline) as Promise<[string, string, ...string[]][]>,
      this.sets.markAge(registryMarkerKey(this.keyPrefix)),
    ]);
    const positions: StreamPosition[] = new Array<StreamPosition>(entries.length);
    const nodes = new Map<string, string[]>();
    groups.forEach(([channel, indices], g) => {
      const [first, epoch, ...holders] = replies[g] ?? ['0', ''];
      spreadPositions(positions, indices, first, epoch);
      nodes.set(channel, holders.sort());
    });
    return { positions, nodes, complete: isComplete(age, this.opts.leaseMs) };
  }
}
