import type { Redis } from 'ioredis';
import { script } from './scripts.js';

export interface ServedConnection {
  readonly userId: string;
  readonly connectionId: string;
}

/** A gateway node whose lease ran out (it crashed), with the connections it served. */
export interface DeadNode {
  readonly nodeId: string;
  readonly connections: readonly ServedConnection[];
}

/**
 * The gateway nodes and the connections each one serves, kept past a node's death so that a live
 * node can announce what the dead one never will (its users going offline). Each dead node is
 * handed to exactly one caller of `claimDead`, however many live nodes ask.
 */
export interface NodeRoster {
  /**
   * Renews `nodeId` for one lease, and the list of the connections it serves with it (each
   * heartbeat). With `connections`, the list is replaced by them: at start and after the store
   * lost its data; otherwise `serve` and `release` keep it, so a heartbeat costs the same
   * however many connections the node serves. Resolves true when the node was still listed
   * before this renewal; false at its first renewal, after it left, and after a peer claimed it as
   * dead (it stalled past its lease and the grace: its connections were announced offline and
   * forgotten, and a live node must register them again).
   */
  renew(nodeId: string, connections?: readonly ServedConnection[]): Promise<boolean>;
  /** Adds one connection of `nodeId` at once, so a crash before the next renewal still finds it. */
  serve(nodeId: string, connection: ServedConnection): Promise<void>;
  /** Removes one closed connection of `nodeId`, so a crash after it does not announce it again. */
  release(nodeId: string, connectionId: string): Promise<void>;
  /** Forgets `nodeId` at once (graceful shutdown: it announced its own connections). */
  leave(nodeId: string): Promise<void>;
  /**
   * Claims every node whose lease ran out at least the roster's grace ago (a live node stalled
   * for less than the grace past its lease renews in time and is never claimed): each is
   * returned to one caller only, then forgotten.
   */
  claimDead(): Promise<DeadNode[]>;
  /**
   * True while a claimer of `nodeId` (from `claimDead`) has not said `reaped`: it is still
   * announcing that node's users offline. A node that was claimed while alive waits for it before
   * registering its connections again, or the claimer's removals would land after its additions.
   * A claimer that died meanwhile is waited for at most ten leases.
   */
  reaping(nodeId: string): Promise<boolean>;
  /** The claimer of `nodeId` announced its users: see `reaping`. */
  reaped(nodeId: string): Promise<void>;
  /**
   * Claims `nodeId`'s entry whatever its lease, for a node starting under an id that may still be
   * listed (restarted in place after a crash, same NODE_ID): the previous incarnation is returned
   * with the connections it served (undefined when there was none) and forgotten.
   */
  claimPrevious(nodeId: string): Promise<DeadNode | undefined>;
}

/*
 * Keys: the roster, a sorted set of node ids scored by lease expiry (ms, Redis clock), and one hash
 * per node, connection id -> user id. Both outlive the last lease by `keepMs` and then expire by
 * themselves (a cluster of which every node died leaves nothing behind). Each script touches one key.
 */

/**
 * KEYS[1] = roster; ARGV[1] = lease ms; ARGV[2] = node id; ARGV[3] = keep ms
 * Renews the node's lease and pushes the roster's expiry past the longest lease plus `keep`.
 * Returns 1 when the node was listed before, 0 when ZADD added it.
 */
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]) + tonumber(ARGV[3]))
return 1 - added
`;

/**
 * KEYS[1] = a node's connections hash; ARGV[1] = keep ms; ARGV[2..] = connection id, user id pairs
 * Replaces the hash with the given connections; it expires `keep` ms after this renewal. HSET
 * takes them 500 pairs at a time: Lua's unpack fails past ~8,000 values, and one process holds up
 * to ~19,900 sockets.
 */
const REPLACE = `
redis.call('DEL', KEYS[1])
if #ARGV > 1 then
  for i = 2, #ARGV, 1000 do
    redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
end
return 1
`;

/**
 * KEYS[1] = a node's connections hash; ARGV[1] = keep ms; ARGV[2] = connection id; ARGV[3] = user id
 * Adds one connection and renews the hash's expiry.
 */
export const SERVE = `
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
`;

/**
 * KEYS[1] = roster; KEYS[2] = the nodes being reaped (a hash in the roster's slot: node id -> until,
 * ms); ARGV[1] = grace ms; ARGV[2] = how long a claim is marked as being reaped at most, ms
 * Removes and returns every node whose lease ran out at least `grace` ago, and marks each as being
 * reaped; being one script, two callers never both get the same node.
 */
const CLAIM = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
for _, node in ipairs(dead) do
  redis.call('ZREM', KEYS[1], node)
  redis.call('HSET', KEYS[2], node, now + tonumber(ARGV[2]))
end
if #dead > 0 then redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2])) end
return dead
`;

/** KEYS[1] = the nodes being reaped; ARGV[1] = node id. 1 while its mark has not run out. */
const REAPING = `
local mark = redis.call('HGET', KEYS[1], ARGV[1])
if not mark then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if tonumber(mark) > now then return 1 end
redis.call('HDEL', KEYS[1], ARGV[1])
return 0
`;

/** KEYS[1] = a node's connections hash. Returns its fields and values, and deletes it. */
const TAKE = `
local all = redis.call('HGETALL', KEYS[1])
redis.call('DEL', KEYS[1])
return all
`;

/** The hash of the connections `nodeId` serves (the node is the hash tag). */
export function nodeConnectionsKey(keyPrefix: string, nodeId: string): string {
  return `${keyPrefix}node-connections:{${nodeId}}`;
}

/**
 * How long (ms) a node's connections hash outlives its last write: its lease and the claim's
 * grace (at most one lease), then long enough for a live node's next sweeps to find the dead
 * one, short enough to vanish soon.
 */
export function servedKeepMs(leaseMs: number): number {
  return leaseMs * 4;
}

/**
 * The grace (ms) a roster gives a node past its lease before `claimDead` hands it out; at most
 * one lease (the connections hash is kept for that long, see {@link servedKeepMs}).
 */
function checkedGrace(graceMs: number, leaseMs: number): number {
  if (!(graceMs >= 0 && graceMs <= leaseMs))
    throw new RangeError(`grace ${graceMs} ms: must be 0 … lease (${leaseMs} ms)`);
  return graceMs;
}

/**
 * The roster in Redis (see the key layout above). `leaseMs`: how long a renewal keeps a node;
 * `graceMs` (0 … `leaseMs`, default 0): how long past its lease a node is still not claimed as
 * dead, so that a live node whose renewal came late (a stalled event loop, a loaded Redis) is
 * not reaped. Throws RangeError for a grace out of range.
 */
export class RedisNodeRoster implements NodeRoster {
  private readonly keepMs: number;
  private readonly graceMs: number;
  private readonly serveScript;
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly leaseMs: number,
    graceMs = 0,
  ) {
    this.graceMs = checkedGrace(graceMs, leaseMs);
    this.keepMs = servedKeepMs(leaseMs) - leaseMs;
    this.serveScript = script(redis, 'rippleRosterServe', 1, SERVE);
  }

  private rosterKey = (): string => `${this.keyPrefix}{registry}:roster`;
  private reapingKey = (): string => `${this.keyPrefix}{registry}:reaping`;
  private connectionsKey = (nodeId: string): string => nodeConnectionsKey(this.keyPrefix, nodeId);

  async renew(nodeId: string, connections?: readonly ServedConnection[]): Promise<boolean> {
    const keep = this.keepMs + this.leaseMs;
    const pipeline = this.redis.pipeline();
    if (connections) {
      const pairs = connections.flatMap((c) => [c.connectionId, c.userId]);
      pipeline.eval(REPLACE, 1, this.connectionsKey(nodeId), String(keep), ...pairs);
    } else pipeline.pexpire(this.connectionsKey(nodeId), keep);
    pipeline.eval(RENEW, 1, this.rosterKey(), String(this.leaseMs), nodeId, String(this.keepMs));
    const results = (await pipeline.exec()) ?? [];
    const failed = results.find(([err]) => err !== null);
    if (failed?.[0]) throw failed[0];
    return results.at(-1)?.[1] === 1;
  }

  async serve(nodeId: string, connection: ServedConnection): Promise<void> {
    const keep = String(servedKeepMs(this.leaseMs));
    await this.serveScript(this.redis, this.connectionsKey(nodeId), keep, connection.connectionId, connection.userId);
  }

  async release(nodeId: string, connectionId: string): Promise<void> {
    await this.redis.hdel(this.connectionsKey(nodeId), connectionId);
  }

  async leave(nodeId: string): Promise<void> {
    await this.redis.zrem(this.rosterKey(), nodeId);
    await this.redis.del(this.connectionsKey(nodeId));
  }

  async claimPrevious(nodeId: string): Promise<DeadNode | undefined> {
    const listed = await this.redis.zrem(this.rosterKey(), nodeId);
    const flat = (await this.redis.eval(TAKE, 1, this.connectionsKey(nodeId))) as string[];
    return listed === 0 && flat.length === 0 ? undefined : { nodeId, connections: pairsOf(flat) };
  }

  async claimDead(): Promise<DeadNode[]> {
    const dead = (await this.redis.eval(
      CLAIM,
      2,
      this.rosterKey(),
      this.reapingKey(),
      String(this.graceMs),
      String(reapingMarkMs(this.leaseMs)),
    )) as string[];
    const out: DeadNode[] = [];
    for (const nodeId of dead.sort()) {
      const flat = (await this.redis.eval(TAKE, 1, this.connectionsKey(nodeId))) as string[];
      out.push({ nodeId, connections: pairsOf(flat) });
    }
    return out;
  }

  async reaping(nodeId: string): Promise<boolean> {
    return (await this.redis.eval(REAPING, 1, this.reapingKey(), nodeId)) === 1;
  }

  async reaped(nodeId: string): Promise<void> {
    await this.redis.hdel(this.reapingKey(), nodeId);
  }
}

/** How long (ms) a claimed node is marked as being reaped at most (its claimer may die announcing). */
function reapingMarkMs(leaseMs: number): number {
  return leaseMs * 10;
}

function pairsOf(flat: readonly string[]): ServedConnection[] {
  const out: ServedConnection[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    out.push({ connectionId: flat[i] as string, userId: flat[i + 1] as string });
  }
  return out.sort((a, b) => a.connectionId.localeCompare(b.connectionId));
}

/**
 * The roster in memory, with an injectable clock (ms) and the same lease and grace as
 * {@link RedisNodeRoster}: a single node only (and unit tests).
 */
export class MemoryNodeRoster implements NodeRoster {
  /** By node: its lease (`until`, when `listed`) and its connections (served before a renewal too). */
  private readonly nodes = new Map<string, { until: number; listed: boolean; connections: ServedConnection[] }>();
  /** Claimed nodes being reaped: node id -> until (ms). */
  private readonly beingReaped = new Map<string, number>();
  private readonly graceMs: number;
  constructor(
    private readonly leaseMs: number,
    private readonly now: () => number = Date.now,
    graceMs = 0,
  ) {
    this.graceMs = checkedGrace(graceMs, leaseMs);
  }

  renew(nodeId: string, connections?: readonly ServedConnection[]): Promise<boolean> {
    const entry = this.nodes.get(nodeId);
    const kept = connections ?? entry?.connections ?? [];
    this.nodes.set(nodeId, { until: this.now() + this.leaseMs, listed: true, connections: [...kept] });
    return Promise.resolve(entry?.listed ?? false);
  }

  release(nodeId: string, connectionId: string): Promise<void> {
    const entry = this.nodes.get(nodeId);
    if (entry) entry.connections = entry.connections.filter((c) => c.connectionId !== connectionId);
    return Promise.resolve();
  }

  serve(nodeId: string, connection: ServedConnection): Promise<void> {
    const entry = this.nodes.get(nodeId);
    if (entry)
      entry.connections = [...entry.connections.filter((c) => c.connectionId !== connection.connectionId), connection];
    else this.nodes.set(nodeId, { until: this.now() + this.leaseMs, listed: false, connections: [connection] });
    return Promise.resolve();
  }

  leave(nodeId: string): Promise<void> {
    this.nodes.delete(nodeId);
    return Promise.resolve();
  }

  claimPrevious(nodeId: string): Promise<DeadNode | undefined> {
    const entry = this.nodes.get(nodeId);
    this.nodes.delete(nodeId);
    return Promise.resolve(
      entry && {
        nodeId,
        connections: [...entry.connections].sort((a, b) => a.connectionId.localeCompare(b.connectionId)),
      },
    );
  }

  claimDead(): Promise<DeadNode[]> {
    const dead: DeadNode[] = [];
    for (const [nodeId, entry] of [...this.nodes].sort(([a], [b]) => a.localeCompare(b))) {
      if (!entry.listed || entry.until + this.graceMs > this.now()) continue;
      this.nodes.delete(nodeId);
      this.beingReaped.set(nodeId, this.now() + reapingMarkMs(this.leaseMs));
      dead.push({
        nodeId,
        connections: [...entry.connections].sort((a, b) => a.connectionId.localeCompare(b.connectionId)),
      });
    }
    return Promise.resolve(dead);
  }

  reaping(nodeId: string): Promise<boolean> {
    return Promise.resolve((this.beingReaped.get(nodeId) ?? -Infinity) > this.now());
  }

  reaped(nodeId: string): Promise<void> {
    this.beingReaped.delete(nodeId);
    return Promise.resolve();
  }
}
