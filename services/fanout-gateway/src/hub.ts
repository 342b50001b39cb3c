/** Something that receives serialised frames: a WebSocket session on this node. */
export interface Subscriber {
  /** Queues one text frame; never throws. */
  send(frame: string): void;
}

/** The channel subscriptions held by this node's sockets. Single node by design. */
export class LocalHub {
  private readonly channels = new Map<string, Set<Subscriber>>();
  private subscriptions = 0;

  /** Returns false when the subscriber already had the channel. */
  subscribe(channel: string, subscriber: Subscriber): boolean {
    let set = this.channels.get(channel);
    if (!set) {
      set = new Set();
      this.channels.set(channel, set);
    }
    if (set.has(subscriber)) return false;
    set.add(subscriber);
    this.subscriptions += 1;
    return true;
  }

  /** Returns false when the subscriber did not have the channel. */
  unsubscribe(channel: string, subscriber: Subscriber): boolean {
    const set = this.channels.get(channel);
    if (!set?.delete(subscriber)) return false;
    this.subscriptions -= 1;
    if (set.size === 0) this.channels.delete(channel);
    return true;
  }

  /** Sends one already-serialised frame to every subscriber of `channel`; returns how many. */
  publish(channel: string, frame: string): number {
    const set = this.channels.get(channel);
    if (!set) return 0;
    for (const subscriber of set) subscriber.send(frame);
    return set.size;
  }

  hasSubscribers(channel: string): boolean {
    return this.channels.has(channel);
  }

  get subscriptionCount(): number {
    return this.subscriptions;
  }

  get channelCount(): number {
    return this.channels.size;
  }
}
