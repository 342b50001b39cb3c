import type { FramePosition } from './sink.js';

const FIN_TEXT = 0x81;

/**
 * One complete, unmasked, final WebSocket text frame (RFC 6455 §5.2: the server never masks) around
 * `payload`: a 2-byte header up to 125 payload bytes, 4 bytes up to 65,535, 10 bytes beyond. `payload`
 * is a string (encoded as UTF-8) or its UTF-8 bytes (copied). Returns a new Buffer of header + payload
 * bytes, ready to be written to the TCP socket as it is.
 */
export function textFrame(payload: string | Buffer): Buffer {
  const length = typeof payload === 'string' ? Buffer.byteLength(payload, 'utf8') : payload.length;
  const header = length > 65_535 ? 10 : length > 125 ? 4 : 2;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = FIN_TEXT;
  if (header === 2) frame[1] = length;
  else if (header === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  if (typeof payload === 'string') frame.write(payload, header, 'utf8');
  else payload.copy(frame, header);
  return frame;
}

const frames = new WeakMap<FramePosition, Buffer>();

/**
 * The WebSocket frame (`textFrame`) of a shared event frame, made once for all the sockets it goes to
 * and kept as long as `position` is: every socket of the channel writes the same bytes, with no
 * per-socket header or framing work. Uses `position.bytes` when whoever made the frame has them.
 */
export function sharedTextFrame(position: FramePosition & { readonly frame: string }): Buffer {
  let frame = frames.get(position);
  if (!frame) {
    frame = textFrame(position.bytes ?? position.frame);
    frames.set(position, frame);
  }
  return frame;
}

/**
 * The shared WebSocket frames handed out in one tick, each once, in the order they were first
 * handed out. The hub gives each event frame to all of its channel's sockets before the next one,
 * so a socket of one channel gets a run of consecutive entries here; `joined` makes the bytes of a
 * run once, as one Buffer, for every socket with the same run: one write per socket and tick
 * instead of one per frame (a stream write keeps an entry object per frame until it is written).
 * Indexes are valid until `clear`.
 */
export class FrameRuns {
  private frames: Buffer[] = [];
  /** `ends[i]`: the bytes of frames 0 … i-1. */
  private ends: number[] = [0];
  private readonly indexes = new Map<Buffer, number>();
  private readonly runs = new Map<number, Buffer>();

  /** The index of `frame`, added at the end when it was not handed out yet in this tick. */
  indexOf(frame: Buffer): number {
    let index = this.indexes.get(frame);
    if (index === undefined) {
      index = this.frames.push(frame) - 1;
      this.indexes.set(frame, index);
      this.ends.push((this.ends[index] ?? 0) + frame.length);
    }
    return index;
  }

  /** Bytes of the `count` frames from index `start`. */
  bytes(start: number, count: number): number {
    return (this.ends[start + count] ?? 0) - (this.ends[start] ?? 0);
  }

  /** The `count` frames from index `start` as one Buffer (the frame itself when `count` is 1), made once per run. */
  joined(start: number, count: number): Buffer {
    if (count === 1) return this.frames[start] as Buffer;
    const key = start * 2 ** 21 + count;
    let run = this.runs.get(key);
    if (!run) {
      run = Buffer.concat(this.frames.slice(start, start + count), this.bytes(start, count));
      this.runs.set(key, run);
    }
    return run;
  }

  /** Forgets the tick's frames and runs. */
  clear(): void {
    this.frames = [];
    this.ends = [0];
    this.indexes.clear();
    this.runs.clear();
  }
}
