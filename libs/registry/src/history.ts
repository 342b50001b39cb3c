/** Where a client is in a channel's history: the offset of the last event it has, and the epoch. */
export interface StreamPosition {
  /** A stream id (`<ms>-<seq>`); `0-0` before the first event. */
  readonly offset: string;
  /** Changes whenever the channel's history was lost, so old offsets cannot be trusted. */
  readonly epoch: string;
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
  /** Appends one payload; returns its offset and the channel's epoch. */
  append(channel: string, payload: string): Promise<StreamPosition>;
  /** The channel's latest offset and epoch (creating the epoch for a channel with no history). */
  position(channel: string): Promise<StreamPosition>;
  /** Everything after `since`, if it can be replayed completely. */
  since(channel: string, since: StreamPosition, limit: number): Promise<Recovery>;
}

/** Orders stream ids numerically (`<ms>-<seq>`). */
export function compareOffsets(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split('-').map((p) => BigInt(p));
  const [bm = 0n, bs = 0n] = b.split('-').map((p) => BigInt(p));
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}

export const OFFSET_PATTERN = /^\d{1,20}-\d{1,20}$/;
