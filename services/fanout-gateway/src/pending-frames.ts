import type { ChannelEnded, FramePosition } from './sink.js';

/** What `PendingFrames` hands frames over to: a TCP socket, an HTTP response. */
export interface DrainableStream {
  /** True once the stream's buffer is full: it emits `drain` when it has room again. */
  readonly writableNeedDrain: boolean;
}

/** What `historyHandedOver` returns when nothing waits: one settled promise, not one per call. */
const SETTLED: Promise<void> = Promise.resolve();

/**
 * A transport's frames its stream could not take yet (its buffer is full), in order, until it
 * drains: a WebSocket's shared frames (one Buffer for every socket of the channel) or frame JSON,
 * an SSE stream's events (their text). Held as references; `bytes` counts them all (UTF-8).
 *
 * Events the gateway read from history (`fromHistory`: a resume's replay, a gap fill, a catch-up)
 * come up to the history limit at once, and a replay larger than the slow-consumer bound was
 * closed part-way on every resume, so a client more than the bound behind never caught up. While
 * they wait they leave at the pace the peer reads, and a transport leaves them out of its bound
 * (`pacedBytes`) while there are at most `historyFrames` of them (one replay's worth, the history
 * limit): more and they all count. A connection fetches one replay at a time: a subscribe with
 * `since` waits until no event from history waits here (`historyHandedOver`, session.ts), so a
 * resume of many channels (an SSE `Last-Event-ID`, a WebSocket client re-subscribing after a
 * reconnect) holds one replay at once and finishes; only gap fills or a catch-up landing on top
 * of a replay can go past the bound. Frames behind them wait and count as any other; the send
 * budget counts them all.
 */
export class PendingFrames<F extends Buffer | string> {
  /** Bytes of every frame waiting (UTF-8 for text). */
  bytes = 0;
  private frames: F[] = [];
  /** Parallel to `frames` once an event from history waits: which frames are such events. */
  private history: boolean[] | undefined;
  private historyCount = 0;
  private historyBytes = 0;
  /** Who waits for the events from history to be handed over (`historyHandedOver`). */
  private historyWaiters: (() => void)[] | undefined;

  /** `historyFrames`: the history limit (`HISTORY_RECOVERY_LIMIT`), in frames (≥ 0). */
  constructor(private readonly historyFrames: number) {}

  /** Frames waiting. */
  get length(): number {
    return this.frames.length;
  }

  /** Queues `frame` behind the others; `position`: where it leaves its channel (sink.ts `send`). */
  push(frame: F, position?: FramePosition | ChannelEnded): void {
    const bytes = byteLength(frame);
    const fromHistory = position !== undefined && 'fromHistory' in position && position.fromHistory === true;
    this.bytes += bytes;
    if (fromHistory) {
      this.history ??= this.frames.map(() => false);
      this.historyCount += 1;
      this.historyBytes += bytes;
    }
    this.frames.push(frame);
    this.history?.push(fromHistory);
  }

  /**
   * The bytes of the waiting events from history that a transport leaves out of its slow-consumer
   * bound: all of theirs while they are at most `historyFrames` frames, else none (see the class).
   */
  pacedBytes(): number {
    return this.historyCount <= this.historyFrames ? this.historyBytes : 0;
  }

  /**
   * Hands frames to `write` in order until `stream` needs a drain again after one, or every frame
   * when `stream` is undefined (a close lets what waits go first). Returns how many still wait.
   */
  handOver(write: (frame: F) => void, stream?: DrainableStream): number {
    const { frames, history } = this;
    let i = 0;
    while (i < frames.length) {
      const frame = frames[i] as F;
      const bytes = byteLength(frame);
      this.bytes -= bytes;
      if (history?.[i] === true) {
        this.historyCount -= 1;
        this.historyBytes -= bytes;
      }
      i += 1;
      write(frame);
      if (stream?.writableNeedDrain === true) break;
    }
    frames.splice(0, i);
    history?.splice(0, i);
    if (this.historyCount === 0) {
      this.history = undefined;
      this.wakeHistoryWaiters();
    }
    return frames.length;
  }

  /**
   * Resolves once no event from history waits here: each was handed over (`handOver`), or dropped
   * (`clear`). At once when none waits. Never rejects.
   */
  historyHandedOver(): Promise<void> {
    if (this.historyCount === 0) return SETTLED;
    return new Promise((resolve) => (this.historyWaiters ??= []).push(resolve));
  }

  /** Drops every frame (the transport closed); whoever waits in `historyHandedOver` goes on. */
  clear(): void {
    this.frames = [];
    this.history = undefined;
    this.bytes = 0;
    this.historyCount = 0;
    this.historyBytes = 0;
    this.wakeHistoryWaiters();
  }

  private wakeHistoryWaiters(): void {
    const waiters = this.historyWaiters;
    this.historyWaiters = undefined;
    for (const resolve of waiters ?? []) resolve();
  }
}

function byteLength(frame: Buffer | string): number {
  return typeof frame === 'string' ? Buffer.byteLength(frame) : frame.length;
}
