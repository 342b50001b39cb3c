/** Something that receives serialised event frames: a WebSocket or SSE session on this node. */
export interface Subscriber {
  /** Queues one event frame of `channel` at `offset`; never throws. */
  deliver(channel: string, offset: string, frame: string): void;
}

/** The channel subscriptions held by this node's sockets. Single node by design. */
export class LocalHub {
  private readonly channels = new Map<string, Set<Subscriber>>();
  private subscriptions = 0;

  /** Returns true when this is the channel's first subscriber on this node. */
  subscribe(channel: string, subscriber: Subscriber): boolean {
    let set = this.channels.get(channel);
    const first = set === undefined;
    if (!set) {
      set = new Set();
      this.channels.set(channel, set);
    }
    if (!set.has(subscriber)) {
      set.add(subscriber);
      this.subscriptions += 1;
    }
    return first;
  }

  /** Returns true when the channel has no subscriber left on this node. */
  unsubscribe(channel: string, subscriber: Subscriber): boolean {
    const set = this.channels.get(channel);
    if (!set?.delete(subscriber)) return false;
    this.subscriptions -= 1;
    if (set.size > 0) return false;
    this.channels.delete(channel);
    return true;
  }

  /** Hands one already-serialised frame to every subscriber of `channel`; returns how many. */
  publish(channel: string, offset: string, frame: string): number {
    const set = this.channels.get(channel);
    if (!set) return 0;
    for (const subscriber of set) subscriber.deliver(channel, offset, frame);
    return set.size;
  }

  /** The channels with at least one subscriber here (what the node holds in the registry). */
  channelNames(): string[] {
    return [...this.channels.keys()];
  }

  get subscriptionCount(): number {
    return this.subscriptions;
  }
}
