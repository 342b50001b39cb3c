import type { MembershipMarks } from '@ripple/auth';
import type { Directory, History, StreamPosition } from '@ripple/registry';
import type { ChannelFrame, LocalHub, Subscriber } from './hub.js';
import { RippleError } from '@ripple/errors';
import { historyFrame } from './hub.js';

export interface SubscriptionDeps {
  readonly nodeId: string;
  readonly hub: LocalHub;
  readonly history: History;
  readonly directory: Directory;
  /** Most events replayed on one subscribe; more means "cannot recover". */
  readonly historyLimit: number;
  /** When users left chat rooms: tokens signed before are refused (membership.ts). */
  readonly marks?: MembershipMarks;
  /** Channels this node derives from others instead of reading their history (`feed:`, feed.ts). */
  readonly derived?: DerivedChannels;
}

/**
 * Channels that have no history of their own: the node composes their frames from channels it
 * reads itself (the live feed, feed.ts). Joining one never recovers: a `since` is answered with
 * `recovered: false`.
 */
export interface DerivedChannels {
  /** Whether `channel` is one of them. */
  owns(channel: string): boolean;
  /**
   * Starts handing `channel`'s frames to `subscriber`, offsets counting on from the returned
   * position (a fresh epoch); `credential` is the connection's access token, for loading what
   * the channel is made of. Throws a RippleError when it cannot (nothing is left joined then).
   */
  join(channel: string, subscriber: Subscriber, credential: string): Promise<StreamPosition>;
  /** Stops handing `channel`'s frames to `subscriber`; a no-op when it was not joined. */
  leave(channel: string, subscriber: Subscriber): Promise<void>;
}

/** Where a connection's channel traffic goes, in order. */
export interface ChannelSink {
  event(frame: ChannelFrame): void;
  /** Events before `position` are lost for this channel: tell the client to refetch (the `gap` frame). */
  gap(channel: string, position: StreamPosition): void;
  /** The connection's current access token, for derived channels ('' when it has none). */
  credential?(): string;
}

type Queued = { readonly frame: ChannelFrame } | { readonly gap: StreamPosition };

interface ChannelState {
  live: boolean;
  /** Hub traffic that arrived while the history was being replayed (none once live). */
  buffer: Queued[] | undefined;
  /** The epoch and offset of the last frame handed out. */
  epoch: string;
  last: number;
  /**
   * True until the first frame is handed out after a subscription without `since` (the own
   * channel, joined on connect): it can still be rewound to a `since` the client sends next.
   */
  rewindable: boolean;
}

/**
 * Registers this node as a holder of a channel when `hold`; resolves with the channel's position
 * when it read it after that, undefined otherwise.
 */
export type Register = (hold: boolean) => Promise<StreamPosition | undefined>;

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
  private closed = false;

  constructor(
    private readonly deps: SubscriptionDeps,
    private readonly sink: ChannelSink,
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

  deliver(frame: ChannelFrame): void {
    const state = this.channels.get(frame.channel);
    if (!state) return;
    if (!state.live) (state.buffer ??= []).push({ frame });
    else this.emit(state, frame);
  }

  gap(channel: string, position: StreamPosition): void {
    const state = this.channels.get(channel);
    if (!state) return;
    if (!state.live) (state.buffer ??= []).push({ gap: position });
    else this.emitGap(state, channel, position);
  }

  /** Hands out a frame unless this connection has it already (or it belongs to another epoch). */
  private emit(state: ChannelState, frame: ChannelFrame): void {
    const offset = Number(frame.offset);
    if (frame.epoch !== state.epoch || offset <= state.last) return;
    state.last = offset;
    state.rewindable = false;
    this.sink.event(frame);
  }

  /** Signals a gap, unless this connection already has everything up to `position`. */
  private emitGap(state: ChannelState, channel: string, position: StreamPosition): void {
    const offset = Number(position.offset);
    if (position.epoch === state.epoch && offset <= state.last) return;
    state.epoch = position.epoch;
    state.last = offset;
    this.sink.gap(channel, position);
  }

  /**
   * Subscribes (idempotently). `announce` is called with the outcome before any replayed event
   * is handed out, so the caller can acknowledge first. `register` records the node as a holder of
   * the channel when `hold` (its first subscriber here) and may read the channel's position after
   * that in the same go (the own channel on connect: ConnectLog); by default the directory's
   * `addChannel`, and the position is read after it.
   */
  async add(
    channel: string,
    since: StreamPosition | undefined,
    announce: (subscribed: Subscribed) => void = () => undefined,
    register: Register = (hold) => this.holdChannel(channel, hold),
  ): Promise<Subscribed> {
    if (this.closed) throw new RippleError('GW_CONNECTION_CLOSED', 'the connection is closed', { status: 410 });
    const existing = this.channels.get(channel);
    if (existing?.rewindable && existing.live && since !== undefined)
      return this.rewind(channel, existing, since, announce);
    if (existing) {
      // A derived channel has no history: where this connection stands is its position.
      const position = this.deps.derived?.owns(channel)
        ? { offset: String(existing.last), epoch: existing.epoch }
        : await this.deps.history.position(channel);
      const subscribed = { recovered: false, position, replayed: 0 };
      announce(subscribed);
      return subscribed;
    }
    const state: ChannelState = { live: false, buffer: undefined, epoch: '', last: 0, rewindable: false };
    this.channels.set(channel, state);
    try {
      const { derived } = this.deps;
      if (derived?.owns(channel)) {
        const position = await derived.join(channel, this, this.sink.credential?.() ?? '');
        state.epoch = position.epoch;
        state.last = Number(position.offset);
        const joined = { recovered: false, position, replayed: 0 };
        announce(joined);
        return joined;
      }
      const registered = await register(this.deps.hub.subscribe(channel, this));
      let result: Subscribed;
      if (since === undefined) {
        const position = registered ?? (await this.deps.history.position(channel));
        this.deps.hub.position(channel, position);
        state.epoch = position.epoch;
        state.last = Number(position.offset);
        state.rewindable = true;
        result = { recovered: false, position, replayed: 0 };
        announce(result);
      } else {
        const recovery = await this.deps.history.since(channel, since, this.deps.historyLimit);
        const { position } = recovery;
        this.deps.hub.position(channel, position);
        state.epoch = position.epoch;
        state.last = Number(recovery.recovered ? since.offset : position.offset);
        result = { recovered: recovery.recovered, position, replayed: recovery.entries.length };
        announce(result);
        for (const entry of recovery.entries) this.emit(state, historyFrame(channel, position.epoch, entry));
      }
      return result;
    } catch (err) {
      await this.remove(channel);
      throw err;
    } finally {
      if (this.channels.get(channel) === state) this.goLive(channel, state);
    }
  }

  /**
   * Resumes a channel joined without `since` (the own channel, on connect) from the `since` the
   * client sends next, before anything was handed out on it: the replay starts earlier than the
   * join, with nothing handed out to reorder or repeat. Live frames wait meanwhile.
   */
  private async rewind(
    channel: string,
    state: ChannelState,
    since: StreamPosition,
    announce: (subscribed: Subscribed) => void,
  ): Promise<Subscribed> {
    state.live = false;
    state.rewindable = false;
    try {
      const recovery = await this.deps.history.since(channel, since, this.deps.historyLimit);
      const { position } = recovery;
      if (!recovery.recovered || position.epoch !== state.epoch) {
        const subscribed = { recovered: false, position, replayed: 0 };
        announce(subscribed);
        return subscribed;
      }
      state.last = Math.min(state.last, Number(since.offset));
      const subscribed = { recovered: true, position, replayed: recovery.entries.length };
      announce(subscribed);
      for (const entry of recovery.entries) this.emit(state, historyFrame(channel, position.epoch, entry));
      return subscribed;
    } finally {
      if (this.channels.get(channel) === state) this.goLive(channel, state);
    }
  }

  private async holdChannel(channel: string, hold: boolean): Promise<undefined> {
    if (hold) await this.deps.directory.addChannel(this.deps.nodeId, channel);
    return undefined;
  }

  private goLive(channel: string, state: ChannelState): void {
    for (const queued of state.buffer ?? []) {
      if ('gap' in queued) this.emitGap(state, channel, queued.gap);
      else this.emit(state, queued.frame);
    }
    state.buffer = undefined;
    state.live = true;
  }

  async remove(channel: string): Promise<void> {
    if (!this.channels.delete(channel)) return;
    if (this.deps.derived?.owns(channel)) await this.deps.derived.leave(channel, this);
    else if (this.deps.hub.unsubscribe(channel, this))
      await this.deps.directory.removeChannel(this.deps.nodeId, channel);
  }

  async removeAll(): Promise<void> {
    await Promise.all(this.names().map((c) => this.remove(c)));
  }

  /**
   * Removes every channel and refuses further `add`s (the connection ended). A channel whose
   * `add` is still in flight is removed here too; that `add` then leaves it alone.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.removeAll();
  }
}
