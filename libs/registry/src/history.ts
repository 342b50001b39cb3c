/** Where a client is in a channel's history: the offset of the last event it has, and the epoch. */
export interface StreamPosition {
  /**
   * The channel's sequence number as a decimal string: `1` for its first event, then `2`, `3`…
   * with no gap, so a missing offset is visible; `0` before the first event.
   */
  readonly offset: string;
  /**
   * Names one unbroken history of the channel; a new one starts whenever the history was lost
   * (expiry, Redis restart), and old offsets cannot be trusted then. 14 hex digits of the
   * creation time (µs, the history store's clock) then 10 random hex digits, so a later epoch
   * compares greater.
   */
  readonly epoch: string;
}

/**
 * Offsets back from a channel's top within which an entry appended again with the same `id` keeps
 * its first offset (`History.appendMany`); older ones are appended again (at least once).
 */
export const HISTORY_DEDUPE_WINDOW = 128;

/** One entry to append: its channel, its payload, and the id that makes appending it again a no-op. */
export interface HistoryAppend {
  readonly channel: string;
  readonly payload: string;
  readonly id?: string;
}

/**
 * Who appends: a fencing token of the source the entries come from (a consumer group's partition,
 * e.g. `ripple.posts/3`). A channel keeps the highest token it got from each source (as long as its
 * history lives) and refuses an append with a lower one, atomically with the append: the owner
 * that lost the source to a later one can no longer append after the later one did.
 */
export interface AppendFence {
  /** The source, at most one consumer group's (the channel keeps a token per source). */
  readonly source: string;
  /** Grows each time the source is assigned (see `FenceTokens`): a non-negative integer below 2^53. */
  readonly token: number;
}

/**
 * An append was refused for `channels` (they saw a higher token of the fence's source): their
 * entries were not appended; the other channels' of the call were.
 */
export class FencedAppendError extends Error {
  readonly code = 'HISTORY_APPEND_FENCED';
  constructor(
    readonly fence: AppendFence,
    readonly channels: readonly string[],
  ) {
    super(
      `append of ${fence.source} with token ${fence.token} fenced by a later owner on ${channels.length} channel(s)`,
    );
    this.name = 'FencedAppendError';
  }
}

export interface HistoryEntry {
  readonly offset: string;
  readonly payload: string;
}

export interface Recovery {
  /** False when the epoch changed, entries after `since` were trimmed, or more than the limit remain. */
  readonly recovered: boolean;
  /** The entries after `since`, oldest first (empty when not recovered). */
  readonly entries: readonly HistoryEntry[];
  /** The channel's current position. */
  readonly position: StreamPosition;
}

/** The capped, per-channel event history used for recovery after a reconnect. */
export interface History {
  /** Appends one payload; returns its offset (the previous one + 1) and the channel's epoch. */
  append(channel: string, payload: string): Promise<StreamPosition>;
  /**
   * Appends many payloads at once (one round trip), in the given order: entries of one channel
   * get increasing offsets in that order. Returns their positions, in the same order. An entry
   * with an `id` (the event's) that its channel got within its last {@link HISTORY_DEDUPE_WINDOW}
   * offsets, in this epoch, is not appended again: its position is the one it got then (a
   * redelivery, e.g. what a node that took over a partition routes again, keeps its offset).
   * With a `fence`, a channel that got a higher token of its source appends nothing, and the call
   * rejects with a FencedAppendError naming those channels once the others are appended.
   */
  appendMany(entries: readonly HistoryAppend[], fence?: AppendFence): Promise<StreamPosition[]>;
  /** The channel's latest offset and epoch (creating the epoch for a channel with no history). */
  position(channel: string): Promise<StreamPosition>;
  /**
   * Everything after `since`, if it can be replayed completely (creating the epoch for a channel
   * with no history, so the answer always carries a real one).
   */
  since(channel: string, since: StreamPosition, limit: number): Promise<Recovery>;
}

/** Orders offsets (decimal sequence numbers) numerically. */
export function compareOffsets(a: string, b: string): number {
  const x = BigInt(a);
  const y = BigInt(b);
  return x === y ? 0 : x < y ? -1 : 1;
}

/** A valid offset: `0` or a decimal sequence number of at most 15 digits (no leading zeros). */
export const OFFSET_PATTERN = /^(0|[1-9]\d{0,14})$/;

/** A valid epoch (see StreamPosition.epoch). */
export const EPOCH_PATTERN = /^[0-9a-f]{24}$/;

/** True when epoch `a` started after epoch `b` (both as made by a History). */
export function isLaterEpoch(a: string, b: string): boolean {
  return a > b;
}

/** A new epoch name for a history created at `nowMicros` (µs); `random` is 10 hex digits. */
export function newEpoch(nowMicros: number, random: string): string {
  return Math.max(0, Math.floor(nowMicros)).toString(16).padStart(14, '0').slice(-14) + random;
}
