import type { Directory, History, StreamPosition } from '@ripple/registry';
import { compareOffsets } from '@ripple/registry';
import type { LocalHub, Subscriber } from './hub.js';
import { eventFrame } from './protocol.js';

export interface SubscriptionDeps {
  readonly nodeId: string;
  readonly hub: LocalHub;
  readonly history: History;
  readonly directory: Directory;
  /** Most events replayed on one subscribe; more means "cannot recover". */
  readonly historyLimit: number;
}

export interface Outgoing {
  readonly channel: string;
  readonly offset: string;
  readonly frame: string;
}

interface ChannelState {
  live: boolean;
  /** Live frames that arrived while the history was being replayed. */
  buffer: Outgoing[];
  /** Offset of the last frame handed out. */
  last: string;
}

export interface Subscribed {
  /** True when `since` was given and everything after it was replayed. */
  readonly recovered: boolean;
  readonly position: StreamPosition;
  readonly replayed: number;
}

/**
 * The channels one connection (WebSocket or SSE) reads. Subscribing joins the local hub first,
 * registers the node for the channel, then replays history and finally releases the live frames
 * that arrived meanwhile, skipping offsets already replayed: no gap and no duplicate.
 */
export class Subscriptions implements Subscriber {
  private readonly channels = new Map<string, ChannelState>();

  constructor(
    private readonly deps: SubscriptionDeps,
    private readonly out: (message: Outgoing) => void,
  ) {}

  get size(): number {
    return this.channels.size;
  }

  has(channel: string): boolean {
    return this.channels.has(channel);
  }

  names(): string[] {
    return [...this.channels.keys()];
  }

  deliver(channel: string, offset: string, frame: string): void {
    const state = this.channels.get(channel);
    if (!state) return;
    if (!state.live) {
      state.buffer.push({ channel, offset, frame });
      return;
    }
    state.last = offset;
    this.out({ channel, offset, frame });
  }

  /**
   * Subscribes (idempotently). `announce` is called with the outcome before any replayed event
   * is handed out, so the caller can acknowledge first.
   */
  async add(
    channel: string,
    since: StreamPosition | undefined,
    announce: (subscribed: Subscribed) => void = () => undefined,
  ): Promise<Subscribed> {
    if (this.channels.has(channel)) {
      const subscribed = { recovered: false, position: await this.deps.history.position(channel), replayed: 0 };
      announce(subscribed);
      return subscribed;
    }
    const state: ChannelState = { live: false, buffer: [], last: '0-0' };
    this.channels.set(channel, state);
    try {
      if (this.deps.hub.subscribe(channel, this)) await this.deps.directory.addChannel(this.deps.nodeId, channel);
      let result: Subscribed;
      if (since === undefined) {
        const position = await this.deps.history.position(channel);
        state.last = position.offset;
        result = { recovered: false, position, replayed: 0 };
        announce(result);
      } else {
        const recovery = await this.deps.history.since(channel, since, this.deps.historyLimit);
        state.last = recovery.recovered ? since.offset : recovery.position.offset;
        result = { recovered: recovery.recovered, position: recovery.position, replayed: recovery.entries.length };
        announce(result);
        for (const entry of recovery.entries) {
          this.out({
            channel,
            offset: entry.offset,
            frame: eventFrame(channel, entry.offset, recovery.position.epoch, entry.payload),
          });
          state.last = entry.offset;
        }
      }
      return result;
    } catch (err) {
      await this.remove(channel);
      throw err;
    } finally {
      this.goLive(state);
    }
  }

  private goLive(state: ChannelState): void {
    for (const message of state.buffer) {
      if (compareOffsets(message.offset, state.last) <= 0) continue;
      state.last = message.offset;
      this.out(message);
    }
    state.buffer = [];
    state.live = true;
  }

  async remove(channel: string): Promise<void> {
    if (!this.channels.delete(channel)) return;
    if (this.deps.hub.unsubscribe(channel, this)) await this.deps.directory.removeChannel(this.deps.nodeId, channel);
  }

  async removeAll(): Promise<void> {
    await Promise.all(this.names().map((c) => this.remove(c)));
  }
}
