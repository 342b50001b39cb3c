import { randomBytes } from 'node:crypto';
import type { AppendFence, History, HistoryAppend, HistoryEntry, Recovery, StreamPosition } from './history.js';
import { FencedAppendError, HISTORY_DEDUPE_WINDOW, newEpoch } from './history.js';

interface ChannelHistory {
  epoch: string;
  /** The last offset given out. */
  seq: number;
  entries: HistoryEntry[];
  /** The offset each recent id got (within HISTORY_DEDUPE_WINDOW of `seq`). */
  ids: Map<string, number>;
  /** The highest fencing token of each source that appended (AppendFence). */
  fences: Map<string, number>;
}

/** In-memory History: single node only (unit tests, embedded mode). Same semantics as RedisHistory. */
export class MemoryHistory implements History {
  private readonly channels = new Map<string, ChannelHistory>();
  private lastEpochMicros = 0;
  constructor(
    private readonly maxLength: number,
    private readonly now: () => number = Date.now,
  ) {}

  private of(channel: string): ChannelHistory {
    let h = this.channels.get(channel);
    if (!h) {
      this.lastEpochMicros = Math.max(this.now() * 1000, this.lastEpochMicros + 1);
      h = {
        epoch: newEpoch(this.lastEpochMicros, randomBytes(5).toString('hex')),
        seq: 0,
        entries: [],
        ids: new Map(),
        fences: new Map(),
      };
      this.channels.set(channel, h);
    }
    return h;
  }

  /** Simulates losing the history (Redis restart or expiry). */
  forget(channel: string): void {
    this.channels.delete(channel);
  }

  append(channel: string, payload: string): Promise<StreamPosition> {
    const h = this.of(channel);
    h.seq += 1;
    const offset = String(h.seq);
    h.entries.push({ offset, payload });
    if (h.entries.length > this.maxLength) h.entries.splice(0, h.entries.length - this.maxLength);
    return Promise.resolve({ offset, epoch: h.epoch });
  }

  async appendMany(entries: readonly HistoryAppend[], fence?: AppendFence): Promise<StreamPosition[]> {
    const fenced = new Set<string>();
    if (fence) {
      // Every channel is checked before anything is appended, as the Redis script does per channel.
      for (const channel of new Set(entries.map((e) => e.channel))) {
        const h = this.of(channel);
        const seen = h.fences.get(fence.source);
        if (seen !== undefined && seen > fence.token) fenced.add(channel);
        else h.fences.set(fence.source, fence.token);
      }
    }
    const out: StreamPosition[] = [];
    for (const e of entries) {
      if (fenced.has(e.channel)) continue;
      const h = this.of(e.channel);
      const known = e.id === undefined ? undefined : h.ids.get(e.id);
      if (known !== undefined && known > h.seq - HISTORY_DEDUPE_WINDOW) {
        out.push({ offset: String(known), epoch: h.epoch });
        continue;
      }
      const position = await this.append(e.channel, e.payload);
      if (e.id !== undefined) h.ids.set(e.id, h.seq);
      // Oldest first (offsets grow in insertion order): stop at the first one still in the window.
      for (const [id, offset] of h.ids) {
        if (offset > h.seq - HISTORY_DEDUPE_WINDOW) break;
        h.ids.delete(id);
      }
      out.push(position);
    }
    if (fence && fenced.size > 0) throw new FencedAppendError(fence, [...fenced]);
    return out;
  }

  position(channel: string): Promise<StreamPosition> {
    const h = this.of(channel);
    return Promise.resolve({ offset: String(h.seq), epoch: h.epoch });
  }

  since(channel: string, since: StreamPosition, limit: number): Promise<Recovery> {
    const h = this.of(channel);
    const position = { offset: String(h.seq), epoch: h.epoch };
    const fail: Recovery = { recovered: false, entries: [], position };
    const from = Number(since.offset);
    if (since.epoch !== h.epoch || from > h.seq || h.seq - from > limit) return Promise.resolve(fail);
    const after = h.entries.filter((e) => Number(e.offset) > from);
    if (after.length !== h.seq - from) return Promise.resolve(fail); // trimmed
    return Promise.resolve({ recovered: true, entries: after, position });
  }
}
