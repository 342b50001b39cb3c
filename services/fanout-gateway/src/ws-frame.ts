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
