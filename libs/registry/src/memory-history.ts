import { randomBytes } from 'node:crypto';
import type { History, HistoryEntry, Recovery, StreamPosition } from './history.js';

interface ChannelHistory {
  epoch: string;
  added: number;
  entries: HistoryEntry[];
}

/** In-memory History: single node only (unit tests, embedded mode). Offsets are `<n>-0`. */
export class MemoryHistory implements History {
  private readonly channels = new Map<string, ChannelHistory>();
  private counter = 0;
  constructor(private readonly maxLength: number) {}

  private of(channel: string): ChannelHistory {
    let h = this.channels.get(channel);
    if (!h) {
      h = { epoch: randomBytes(6).toString('hex'), added: 0, entries: [] };
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
    this.counter += 1;
    const offset = `${this.counter}-0`;
    h.entries.push({ offset, payload });
    h.added += 1;
    if (h.entries.length > this.maxLength) h.entries.splice(0, h.entries.length - this.maxLength);
    return Promise.resolve({ offset, epoch: h.epoch });
  }

  position(channel: string): Promise<StreamPosition> {
    const h = this.of(channel);
    return Promise.resolve({ offset: h.entries.at(-1)?.offset ?? '0-0', epoch: h.epoch });
  }

  since(channel: string, since: StreamPosition, limit: number): Promise<Recovery> {
    const h = this.of(channel);
    const position = { offset: h.entries.at(-1)?.offset ?? '0-0', epoch: h.epoch };
    const fail: Recovery = { recovered: false, entries: [], position };
    if (since.epoch !== h.epoch) return Promise.resolve(fail);
    let after: HistoryEntry[];
    if (since.offset === '0-0') {
      if (h.added !== h.entries.length) return Promise.resolve(fail);
      after = h.entries;
    } else {
      const at = h.entries.findIndex((e) => e.offset === since.offset);
      if (at < 0) return Promise.resolve(fail);
      after = h.entries.slice(at + 1);
    }
    if (after.length > limit) return Promise.resolve(fail);
    return Promise.resolve({ recovered: true, entries: [...after], position });
  }
}
