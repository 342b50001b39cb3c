import type { LeasedSets } from './leased-set.js';

/**
 * The connection registry: live gateway nodes, which nodes hold subscribers of a channel, and
 * each user's live connections (presence). Every entry is a lease that its node renews with
 * `refresh`; a node that stops renewing (crash) disappears within one lease. `refresh` also
 * refills a Redis that restarted empty.
 */
export interface Directory {
  /** Records that `nodeId` holds at least one subscriber of `channel`. */
  addChannel(nodeId: string, channel: string): Promise<void>;
  /** Records that `nodeId` holds no more subscribers of `channel`. */
  removeChannel(nodeId: string, channel: string): Promise<void>;
  /** The nodes that hold subscribers of `channel`. */
  nodesFor(channel: string): Promise<string[]>;
  /**
   * The nodes that hold subscribers of each channel (one round trip). `complete` is false while
   * the registry may be missing entries: its store lost its data (Redis restarted or was flushed)
   * less than one lease ago, so not every live node has renewed what it holds yet; a router must
   * then send to every node.
   */
  lookup(channels: readonly string[]): Promise<{ nodes: Map<string, string[]>; complete: boolean }>;
  /**
   * Since when the registry's store has kept its current data (ms since the epoch, this process's
   * clock), or undefined when it lost its data and no heartbeat has marked it since. What was
   * recorded before (a chat departure) may be gone: nothing older can be ruled out.
   */
  dataSince(): Promise<number | undefined>;
  /** Registers a live connection; resolves true when it is the user's only one (came online). */
  connect(userId: string, connectionId: string): Promise<boolean>;
  /** Removes a connection; resolves true when the user has no live one left (went offline). */
  disconnect(userId: string, connectionId: string): Promise<boolean>;
  /** The user's live connection ids. */
  connectionsOf(userId: string): Promise<string[]>;
  /** The live gateway nodes. */
  liveNodes(): Promise<string[]>;
  /**
   * The heartbeat: renews this node and every channel it holds (their leases are one lease long),
   * and the presence of a share of the connections it serves (presence leases are longer: each
   * connection is renewed a few times per presence lease, not on every heartbeat). Renews every
   * connection when the store's data is new to this directory (its first refresh, or the store
   * lost its data since the last one); `refilled` then says so, and what the caller keeps in the
   * same store must be written again too.
   */
  refresh(holdings: {
    channels: readonly string[];
    connections: readonly { userId: string; connectionId: string }[];
  }): Promise<{ refilled: boolean }>;
  /** Removes this node and what it holds at once (graceful shutdown). */
  leave(holdings: {
    channels: readonly string[];
    connections: readonly { userId: string; connectionId: string }[];
  }): Promise<void>;
}

/** The leased set of the nodes that hold subscribers of `channel` (the channel is the hash tag). */
export function channelNodesKey(keyPrefix: string, channel: string): string {
  return `${keyPrefix}channel-nodes:{${channel}}`;
}

/** The leased set of a user's live connections (presence; the user is the hash tag, as in `user:<id>`). */
export function presenceKey(keyPrefix: string, userId: string): string {
  return `${keyPrefix}presence:{user:${userId}}`;
}

/** The marker that tells how long the registry's store has kept its data. */
export function registryMarkerKey(keyPrefix: string): string {
  return `${keyPrefix}{registry}:since`;
}

/**
 * Whether the registry can be trusted to list every holder: its marker (age in ms, undefined when
 * missing) is at least one lease old, so every live node renewed what it holds since.
 */
export function isComplete(markerAgeMs: number | undefined, leaseMs: number): boolean {
  return markerAgeMs !== undefined && markerAgeMs >= leaseMs;
}

/** The share (0 … `shares` - 1) of the connections that a heartbeat renews `id` with (FNV-1a). */
function shareOf(id: string, shares: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % shares;
}

/**
 * Directory over leased sets: Redis in production, memory for a single node and unit tests.
 * Node and channel entries are leased for `leaseMs` and renewed on every refresh. A connection's
 * presence entry is leased for `presenceLeaseMs` (at least `leaseMs`): each refresh renews one of
 * `presenceLeaseMs / leaseMs` shares of the connections, so each connection is renewed once every
 * that many refreshes, three times per presence lease with a refresh every third of a lease (the
 * margin the node lease has too). A heartbeat thus costs O(connections × leaseMs /
 * presenceLeaseMs) Redis commands, not O(connections). A crashed node's presence entries are
 * removed by the live node that reaps it (the node roster lists them), else lapse by themselves.
 */
export class LeasedDirectory implements Directory {
  private readonly presenceLeaseMs: number;
  private readonly shares: number;
  private refreshes = 0;
  /** The store's marker as the last refresh saw it (undefined before the first). */
  private marker: number | undefined;
  constructor(
    private readonly sets: LeasedSets,
    private readonly keyPrefix: string,
    private readonly nodeId: string,
    private readonly leaseMs: number,
    presenceLeaseMs = leaseMs,
  ) {
    this.presenceLeaseMs = Math.max(leaseMs, presenceLeaseMs);
    this.shares = Math.max(1, Math.floor(this.presenceLeaseMs / leaseMs));
  }

  // Hash tags keep each key in its own slot family; every script touches one key.
  private nodesKey = (): string => `${this.keyPrefix}{registry}:nodes`;
  private markerKey = (): string => registryMarkerKey(this.keyPrefix);
  private channelKey = (channel: string): string => channelNodesKey(this.keyPrefix, channel);
  private userKey = (userId: string): string => presenceKey(this.keyPrefix, userId);

  async addChannel(nodeId: string, channel: string): Promise<void> {
    await this.sets.add(this.channelKey(channel), this.leaseMs, [nodeId]);
  }

  async removeChannel(nodeId: string, channel: string): Promise<void> {
    await this.sets.remove(this.channelKey(channel), [nodeId]);
  }

  nodesFor(channel: string): Promise<string[]> {
    return this.sets.live(this.channelKey(channel));
  }

  async lookup(channels: readonly string[]): Promise<{ nodes: Map<string, string[]>; complete: boolean }> {
    const [live, age] = await Promise.all([
      this.sets.liveMany(channels.map((c) => this.channelKey(c))),
      this.sets.markAge(this.markerKey()),
    ]);
    const nodes = new Map(channels.map((c, i) => [c, live[i] ?? []]));
    return { nodes, complete: isComplete(age, this.leaseMs) };
  }

  async dataSince(): Promise<number | undefined> {
    const age = await this.sets.markAge(this.markerKey());
    return age === undefined ? undefined : Date.now() - age;
  }

  async connect(userId: string, connectionId: string): Promise<boolean> {
    return (await this.sets.add(this.userKey(userId), this.presenceLeaseMs, [connectionId])) === 1;
  }

  async disconnect(userId: string, connectionId: string): Promise<boolean> {
    return (await this.sets.remove(this.userKey(userId), [connectionId])) === 0;
  }

  connectionsOf(userId: string): Promise<string[]> {
    return this.sets.live(this.userKey(userId));
  }

  liveNodes(): Promise<string[]> {
    return this.sets.live(this.nodesKey());
  }

  async refresh(holdings: {
    channels: readonly string[];
    connections: readonly { userId: string; connectionId: string }[];
  }): Promise<{ refilled: boolean }> {
    const marker = await this.sets.mark(this.markerKey());
    const refilled = marker !== this.marker;
    this.marker = marker;
    const share = this.refreshes++ % this.shares;
    const byUser = new Map<string, string[]>();
    for (const c of holdings.connections) {
      if (!refilled && shareOf(c.connectionId, this.shares) !== share) continue;
      const ids = byUser.get(c.userId);
      if (ids) ids.push(c.connectionId);
      else byUser.set(c.userId, [c.connectionId]);
    }
    await Promise.all([
      this.sets.addMany(
        [
          { key: this.nodesKey(), members: [this.nodeId] },
          ...holdings.channels.map((channel) => ({ key: this.channelKey(channel), members: [this.nodeId] })),
        ],
        this.leaseMs,
      ),
      this.sets.addMany(
        [...byUser].map(([userId, ids]) => ({ key: this.userKey(userId), members: ids })),
        this.presenceLeaseMs,
      ),
    ]);
    return { refilled };
  }

  async leave(holdings: {
    channels: readonly string[];
    connections: readonly { userId: string; connectionId: string }[];
  }): Promise<void> {
    await this.sets.remove(this.nodesKey(), [this.nodeId]);
    for (const channel of holdings.channels) await this.sets.remove(this.channelKey(channel), [this.nodeId]);
    for (const c of holdings.connections) await this.sets.remove(this.userKey(c.userId), [c.connectionId]);
  }
}
