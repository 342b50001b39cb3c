import type { Redis } from 'ioredis';
import calculateSlot from 'cluster-key-slot';
import { channelNodesKey, presenceKey } from './directory.js';
import type { Directory } from './directory.js';
import type { History, StreamPosition } from './history.js';
import { LEASE_ADD, LEASE_REMOVE } from './leased-set.js';
import { OPEN_EPOCH, epochSuffix, historyKeys } from './redis-history.js';
import type { RedisHistoryOptions } from './redis-history.js';
import { SERVE, nodeConnectionsKey, servedKeepMs } from './roster.js';
import type { NodeRoster } from './roster.js';
import { script } from './scripts.js';

/** A connection being opened on `nodeId`, and its user's own channel. */
export interface ConnectionOpening {
  readonly nodeId: string;
  readonly userId: string;
  readonly connectionId: string;
  /** The user's own channel (`user:<userId>`), joined on connect. */
  readonly channel: string;
  /** True when the node has no other subscriber of `channel`: it becomes one of its holders. */
  readonly holdChannel: boolean;
}

/** A connection of `nodeId` that closed. */
export interface ConnectionClosing {
  readonly nodeId: string;
  readonly userId: string;
  readonly connectionId: string;
}

/** What opening a connection learnt. */
export interface OpenedConnection {
  /** True when it is the user's only live connection (the user came online). */
  readonly first: boolean;
  /** The own channel's position, read after the node was registered as its holder. */
  readonly position: StreamPosition;
}

/**
 * The registry work of opening a connection, with the same guarantees as doing, in this order:
 * `NodeRoster.serve` (so a crash of the node from here on is announced for the connection),
 * `Directory.connect` (presence), `Directory.addChannel` of the own channel when `holdChannel`,
 * then `History.position` of it (so an event appended after the read is routed to the node).
 */
export interface ConnectLog {
  /** Registers the connection and reads its own channel's position. */
  open(opening: ConnectionOpening): Promise<OpenedConnection>;
  /**
   * Undoes `open`'s registration of a closed connection, as `NodeRoster.release` (a crash of the
   * node from here on does not announce it) and `Directory.disconnect` (presence) would; the own
   * channel's holder is the hub's to drop. Resolves true when the user has no live connection
   * left (went offline).
   */
  close(closing: ConnectionClosing): Promise<boolean>;
}

/**
 * Any Directory, History and NodeRoster (the memory adapters): the registrations are issued
 * together, in order, so a store that applies calls in the order it gets them (one Redis
 * connection, memory) applies them in that order, and a removal issued after `open` applies after
 * them; the position is read once they are done.
 */
export class SequentialConnectLog implements ConnectLog {
  constructor(
    private readonly directory: Directory,
    private readonly history: History,
    private readonly roster?: NodeRoster,
  ) {}

  async open(o: ConnectionOpening): Promise<OpenedConnection> {
    const [, first] = await Promise.all([
      this.roster?.serve(o.nodeId, { userId: o.userId, connectionId: o.connectionId }),
      this.directory.connect(o.userId, o.connectionId),
      o.holdChannel ? this.directory.addChannel(o.nodeId, o.channel) : undefined,
    ]);
    return { first, position: await this.history.position(o.channel) };
  }

  async close(c: ConnectionClosing): Promise<boolean> {
    const [, last] = await Promise.all([
      this.roster?.release(c.nodeId, c.connectionId),
      this.directory.disconnect(c.userId, c.connectionId),
    ]);
    return last;
  }
}

/**
 * KEYS[1] = the user's presence leased set, KEYS[2] = the own channel's leased set of nodes,
 * KEYS[3], KEYS[4] = its history stream and meta hash (all four in the slot of `{user:<id>}`).
 * ARGV[1] = the channel holder's lease ms, ARGV[2] = connection id, ARGV[3] = node id, or '' when
 * the node holds the channel already, ARGV[4] = history ttl ms, ARGV[5] = random epoch suffix,
 * ARGV[6] = the presence lease ms.
 * Adds the connection to the presence set and the node to the channel's holders (as
 * LeasedDirectory does), then reads the channel's position (as RedisHistory does, opening its
 * epoch if it has none). Returns {live connections of the user, offset, epoch}.
 */
const OPEN = `${LEASE_ADD}${OPEN_EPOCH}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local live = lease_add_at(KEYS[1], ARGV[6], now, 2, 2)
if ARGV[3] ~= '' then lease_add_at(KEYS[2], ARGV[1], now, 3, 3) end
local epoch = open_epoch_of(KEYS[3], KEYS[4], ARGV[4], ARGV[5], t)
return {live, redis.call('HGET', KEYS[4], 'seq'), epoch}
`;

export interface RedisConnectLogOptions extends RedisHistoryOptions {
  /** The directory's lease (ms): the own channel's holder entry. */
  readonly leaseMs: number;
  /**
   * The presence lease (ms) of a connection, as `LeasedDirectory`'s `presenceLeaseMs` (at least
   * `leaseMs`): the directory renews a connection's presence once per this long, so a shorter
   * lease here would let a connected user look offline until then.
   */
  readonly presenceLeaseMs: number;
}

/**
 * ConnectLog on the keys of RedisNodeRoster, LeasedDirectory over RedisLeasedSets and RedisHistory
 * (same prefix): two script calls sent together, one round trip. The user's presence set and the
 * own channel's holders and history share the user's hash tag, so one script does them atomically;
 * the roster entry lives in the node's slot and is sent first. Four commands in two round trips
 * before (serve and connect, then the channel's holder and its position).
 */
export class RedisConnectLog implements ConnectLog {
  private readonly serve;
  private readonly run;
  private readonly leave;
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly opts: RedisConnectLogOptions,
  ) {
    this.serve = script(redis, 'rippleRosterServe', 1, SERVE);
    this.run = script(redis, 'rippleOpenConnection', 4, OPEN);
    this.leave = script(redis, 'rippleLeaseRemove', 1, LEASE_REMOVE);
  }

  /** Throws a RangeError when `channel` is not in the user's slot (not `user:<userId>`). */
  async open(o: ConnectionOpening): Promise<OpenedConnection> {
    const presence = presenceKey(this.keyPrefix, o.userId);
    const [stream, meta] = historyKeys(this.keyPrefix, o.channel);
    if (calculateSlot(presence) !== calculateSlot(stream)) {
      throw new RangeError(`channel ${o.channel} is not in the slot of user ${o.userId}'s presence`);
    }
    const served = this.serve(
      this.redis,
      nodeConnectionsKey(this.keyPrefix, o.nodeId),
      String(servedKeepMs(this.opts.leaseMs)),
      o.connectionId,
      o.userId,
    );
    const opened = this.run(
      this.redis,
      presence,
      channelNodesKey(this.keyPrefix, o.channel),
      stream,
      meta,
      String(Math.ceil(this.opts.leaseMs)),
      o.connectionId,
      o.holdChannel ? o.nodeId : '',
      String(this.opts.ttlMs),
      epochSuffix(),
      String(Math.ceil(Math.max(this.opts.leaseMs, this.opts.presenceLeaseMs))),
    ) as Promise<[number, string, string]>;
    const [, [live, offset, epoch]] = await Promise.all([served, opened]);
    return { first: live === 1, position: { offset, epoch } };
  }

  /** The roster's HDEL and the presence removal are sent together: one round trip. */
  async close(c: ConnectionClosing): Promise<boolean> {
    const [, live] = await Promise.all([
      this.redis.hdel(nodeConnectionsKey(this.keyPrefix, c.nodeId), c.connectionId),
      this.leave(this.redis, presenceKey(this.keyPrefix, c.userId), c.connectionId) as Promise<number>,
    ]);
    return live === 0;
  }
}
