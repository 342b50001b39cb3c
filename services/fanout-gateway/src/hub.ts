import type { History, HistoryEntry, Recovery, StreamPosition } from '@ripple/registry';
import { isLaterEpoch } from '@ripple/registry';
import { eventFrame } from './protocol.js';

/** One event frame of a channel, serialised once and shared by every socket on the channel. */
export interface ChannelFrame {
  readonly channel: string;
  /** The event's offset in the channel (a decimal sequence number, contiguous within an epoch). */
  readonly offset: string;
  readonly epoch: string;
  readonly frame: string;
  /** Read from history (a replay, a fill or a catch-up): the transport paces it (sink.ts `fromHistory`). */
  readonly fromHistory?: true;
}

/** The frame of a history entry of `channel` in `epoch` (a replay, a fill or a catch-up). */
export function historyFrame(channel: string, epoch: string, entry: HistoryEntry): ChannelFrame {
  const frame = eventFrame(channel, entry.offset, epoch, entry.payload);
  return { channel, offset: entry.offset, epoch, frame, fromHistory: true };
}

/** Something that receives a channel's frames: a WebSocket or SSE session on this node. */
export interface Subscriber {
  /** Queues one frame. A channel's frames come in offset order, with no gap; never throws. */
  deliver(frame: ChannelFrame): void;
  /**
   * Events of `channel` before `position` could not be delivered (the history was lost or
   * trimmed): the subscriber continues from `position` and must refetch the channel's state.
   */
  gap(channel: string, position: StreamPosition): void;
}

export type GapReason = 'filled' | 'lost';

export interface HubOptions {
  /** Where missing frames are read from: the channel history the router appends to. */
  readonly history: Pick<History, 'since'>;
  /** Most frames read from history to fill one gap; a longer gap is signalled instead. */
  readonly fillLimit: number;
  /** Frames handed to subscribers outside `publish` (gap fills), for the deliveries metric. */
  readonly onDelivered?: (sockets: number) => void;
  /** A gap was seen: `filled` from history, or `lost` and signalled to the subscribers. */
  readonly onGap?: (reason: GapReason) => void;
  /** A frame was just handed to its channel's subscribers (before the next one is). */
  readonly onHandedOut?: (frame: ChannelFrame) => void;
}

interface ChannelStream {
  readonly subscribers: Set<Subscriber>;
  /** Unknown until a subscriber read the channel's position; frames wait in `early` until then. */
  epoch: string | undefined;
  /** The offset of the last frame handed to the subscribers. */
  last: number;
  /** Frames of the current epoch that arrived ahead of a missing offset. */
  readonly pending: Map<number, ChannelFrame>;
  early: ChannelFrame[];
  /** A read of the missing frames from history is in flight. */
  filling: boolean;
  /** A catch-up came before the position: read history past the position once it comes. */
  owesCatchUp: boolean;
}

/**
 * The channel subscriptions held by this node's sockets, and the order of each channel's frames.
 * Frames of one channel reach this node from several routers (each Kafka partition is consumed by
 * some node) and can arrive out of order; the hub hands them to subscribers strictly in offset
 * order with no gap. A frame ahead of a missing offset waits while the missing ones are read from
 * history (they were appended before any frame after them was sent); what history cannot give any
 * more is signalled to the subscribers as a gap, as is a new epoch. Single node by design.
 */
export class LocalHub {
  private readonly channels = new Map<string, ChannelStream>();
  private subscriptions = 0;

  constructor(private readonly opts: HubOptions) {}

  /** Returns true when this is the channel's first subscriber on this node. */
  subscribe(channel: string, subscriber: Subscriber): boolean {
    let stream = this.channels.get(channel);
    const first = stream === undefined;
    if (!stream) {
      stream = {
        subscribers: new Set(),
        epoch: undefined,
        last: 0,
        pending: new Map(),
        early: [],
        filling: false,
        owesCatchUp: false,
      };
      this.channels.set(channel, stream);
    }
    if (!stream.subscribers.has(subscriber)) {
      stream.subscribers.add(subscriber);
      this.subscriptions += 1;
    }
    return first;
  }

  /**
   * Tells the hub where the channel stands, as a subscriber read it from history after this node
   * was registered for the channel; the first report wins (reads on one Redis connection answer in
   * order, so it is the earliest). Frames that arrived before are released from there.
   */
  position(channel: string, position: StreamPosition): void {
    const stream = this.channels.get(channel);
    if (!stream || stream.epoch !== undefined) return;
    stream.epoch = position.epoch;
    stream.last = Number(position.offset);
    const early = stream.early;
    stream.early = [];
    for (const frame of early) this.accept(stream, frame);
    if (!stream.owesCatchUp) return;
    stream.owesCatchUp = false;
    this.fill(stream, channel).catch(() => undefined); // a gap was signalled if frames waited
  }

  /** Returns true when the channel has no subscriber left on this node. */
  unsubscribe(channel: string, subscriber: Subscriber): boolean {
    const stream = this.channels.get(channel);
    if (!stream?.subscribers.delete(subscriber)) return false;
    this.subscriptions -= 1;
    if (stream.subscribers.size > 0) return false;
    this.channels.delete(channel);
    return true;
  }

  /** Accepts one frame of a channel (from this node's router or another's); returns the sockets written now. */
  publish(frame: ChannelFrame): number {
    const stream = this.channels.get(frame.channel);
    if (!stream) return 0;
    return this.accept(stream, frame);
  }

  /** The channels with at least one subscriber here (what the node holds in the registry). */
  channelNames(): string[] {
    return [...this.channels.keys()];
  }

  get subscriptionCount(): number {
    return this.subscriptions;
  }

  private accept(stream: ChannelStream, frame: ChannelFrame): number {
    if (stream.epoch === undefined) {
      stream.early.push(frame);
      return 0;
    }
    if (frame.epoch !== stream.epoch) {
      // A late frame of a history that was lost since; its subscribers were told already.
      if (!isLaterEpoch(frame.epoch, stream.epoch)) return 0;
      stream.epoch = frame.epoch;
      stream.last = 0;
      stream.pending.clear();
      this.signalGap(stream, frame.channel);
    }
    const offset = Number(frame.offset);
    if (offset <= stream.last) return 0; // already handed out (a redelivery, or filled from history)
    if (offset === stream.last + 1 && stream.pending.size === 0) {
      // The usual case, the next frame with none waiting: handed out without a detour through `pending`.
      stream.last = offset;
      return this.handOut(stream, frame);
    }
    stream.pending.set(offset, frame);
    return this.drain(stream, frame.channel);
  }

  /** Hands out every pending frame that follows the last one; starts a fill when one is missing. */
  private drain(stream: ChannelStream, channel: string): number {
    let written = 0;
    for (let next = stream.pending.get(stream.last + 1); next; next = stream.pending.get(stream.last + 1)) {
      stream.pending.delete(stream.last + 1);
      stream.last += 1;
      written += this.handOut(stream, next);
    }
    if (stream.pending.size > 0 && !stream.filling) this.fill(stream, channel).catch(() => undefined); // a gap was signalled
    return written;
  }

  /** Gives `frame` (the channel's frame at `stream.last`) to every subscriber; returns how many. */
  private handOut(stream: ChannelStream, frame: ChannelFrame): number {
    for (const subscriber of stream.subscribers) subscriber.deliver(frame);
    this.opts.onHandedOut?.(frame);
    return stream.subscribers.size;
  }

  /**
   * Reads what follows the last frame handed out from history and hands it out. Resolves with the
   * sockets written; rejects when history could not be read (after signalling a gap if frames were
   * waiting behind the missing ones: those cannot wait for ever).
   */
  private fill(stream: ChannelStream, channel: string): Promise<number> {
    const epoch = stream.epoch ?? '';
    const from = stream.last;
    stream.filling = true;
    return this.opts.history.since(channel, { offset: String(from), epoch }, this.opts.fillLimit).then(
      (recovery) => this.settle(stream, channel, epoch, from, recovery),
      (err: unknown) => {
        this.settle(stream, channel, epoch, from, undefined);
        throw err;
      },
    );
  }

  /** Takes a history read started at `from` of `epoch` (undefined: it failed); returns the sockets written. */
  private settle(stream: ChannelStream, channel: string, epoch: string, from: number, recovery?: Recovery): number {
    stream.filling = false;
    if (this.channels.get(channel) !== stream) return 0;
    if (stream.epoch === epoch && recovery?.recovered) {
      // Entries of this epoch are its frames whatever else was handed out meanwhile (reads overlap).
      if (recovery.entries.some((e) => Number(e.offset) > stream.last)) this.opts.onGap?.('filled');
      for (const e of recovery.entries) {
        const offset = Number(e.offset);
        if (offset > stream.last && !stream.pending.has(offset))
          stream.pending.set(offset, historyFrame(channel, epoch, e));
      }
    } else if (stream.epoch === epoch && stream.last === from) {
      // History cannot give what follows `from` any more: say so, and go on from the next frame
      // we have, or from the channel's head when none waits (a tail that no frame revealed).
      const head = recovery?.position;
      if (stream.pending.size > 0) {
        stream.last = Math.min(...stream.pending.keys()) - 1;
        this.signalGap(stream, channel);
      } else if (head && head.epoch !== epoch && isLaterEpoch(head.epoch, epoch)) {
        stream.epoch = head.epoch;
        stream.last = Number(head.offset);
        this.signalGap(stream, channel);
      } else if (head && head.epoch === epoch && Number(head.offset) > stream.last) {
        stream.last = Number(head.offset);
        this.signalGap(stream, channel);
      }
    }
    const written = this.drain(stream, channel);
    if (written > 0) this.opts.onDelivered?.(written);
    return written;
  }

  /**
   * Reads every held channel's history past the last frame handed out, and hands out what it
   * finds (or signals a gap where history lost it). For when this node may have missed frames
   * that no later frame will reveal: its registry lease lapsed (other routers skipped it) or its
   * node-bus connection dropped messages (or the node dropped them: router.ts). Only `channels`
   * when given (those this node does not hold are skipped). One history read per channel, all in
   * flight together; a channel whose position is not known yet is read once it is (`position`).
   * Resolves with the sockets written; rejects when any read failed (call it again).
   */
  async catchUp(channels?: Iterable<string>): Promise<number> {
    const reads: Promise<number>[] = [];
    for (const channel of channels ?? this.channels.keys()) {
      const stream = this.channels.get(channel);
      if (stream?.epoch !== undefined) reads.push(this.fill(stream, channel));
      else if (stream) stream.owesCatchUp = true;
    }
    let written = 0;
    const failures: unknown[] = [];
    for (const result of await Promise.allSettled(reads)) {
      if (result.status === 'fulfilled') written += result.value;
      else failures.push(result.reason);
    }
    if (failures.length > 0) throw new AggregateError(failures, `${failures.length} history reads failed`);
    return written;
  }

  private signalGap(stream: ChannelStream, channel: string): void {
    this.opts.onGap?.('lost');
    const position = { offset: String(stream.last), epoch: stream.epoch ?? '' };
    for (const subscriber of stream.subscribers) subscriber.gap(channel, position);
  }
}
