import { parseServerFrame } from './frames.js';
import type { ServerFrame } from './frames.js';

/** What a transport reports; nothing is reported after the client called `close()`. */
export interface TransportHandlers {
  onOpen(): void;
  onFrame(frame: ServerFrame): void;
  /** Any inbound traffic, frames and keep-alives alike (liveness). */
  onActivity(): void;
  /** Once. `opened`: the transport had opened before it closed. */
  onClose(code: number, reason: string, opened: boolean): void;
}

/** One connection to the gateway, over WebSocket or SSE. */
export interface Transport {
  readonly kind: 'websocket' | 'sse';
  /** Sends a client frame (WebSocket only; SSE has no upstream and ignores it). */
  send(frame: object): void;
  close(): void;
}

/**
 * A WebSocket constructor: the browser's `WebSocket`, Node ≥ 22's global one, or the `ws`
 * package's. Typed loosely because their handler signatures differ; the client uses only
 * `onopen`, `onmessage`, `onclose`, `send`, `close` and `readyState`.
 */
export type WebSocketConstructor = new (url: string) => object;

interface WebSocketLike {
  readyState: number;
  /** `ws` (Node) only: its EventEmitter, which reports the server's WebSocket pings (browsers hide them). */
  on?: (event: 'ping', listener: () => void) => unknown;
  onopen: (() => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: (() => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** Opens `url` (with the access token in its query) as a WebSocket. */
export function openWebSocket(Ctor: WebSocketConstructor, url: string, handlers: TransportHandlers): Transport {
  const socket = new Ctor(url) as WebSocketLike;
  let opened = false;
  let done = false;
  socket.onopen = () => {
    opened = true;
    handlers.onOpen();
  };
  socket.onmessage = ({ data }) => {
    if (done) return;
    handlers.onActivity();
    const frame = typeof data === 'string' ? parseServerFrame(data) : undefined;
    if (frame) handlers.onFrame(frame);
  };
  socket.onclose = ({ code, reason }) => {
    if (done) return;
    done = true;
    handlers.onClose(code, reason, opened);
  };
  socket.onerror = () => undefined; // `onclose` follows every error
  // The server's pings prove the connection alive as much as a frame does.
  if (typeof socket.on === 'function')
    socket.on('ping', () => {
      if (!done) handlers.onActivity();
    });
  return {
    kind: 'websocket',
    send: (frame) => {
      if (socket.readyState === 1) socket.send(JSON.stringify(frame));
    },
    close: () => {
      done = true;
      socket.close(1000, 'client closed');
    },
  };
}

/** SSE `event: error` codes that end the stream, mapped to the WebSocket close code they stand for. */
const STREAM_END: Record<string, number> = {
  AUTH_TOKEN_EXPIRED: 4001,
  AUTH_TOKEN_INVALID: 4001,
  GW_RATE_LIMITED: 4008,
  GW_SLOW_CONSUMER: 4009,
  GW_INTERNAL: 1011,
};

/**
 * Opens an SSE stream with `fetch` (so the token goes in a header and `Last-Event-ID` can be
 * set). Its events carry the same JSON as WebSocket frames. An HTTP refusal closes with
 * 4000 + status and the body's `code` as the reason (401 → 4001 like the WebSocket); a stream
 * ended by an `error` event closes with the matching WebSocket code (4001, 4008, 4009, 1011);
 * one ended after `reconnect` closes with 1001.
 */
export function openSse(
  fetchImpl: typeof fetch,
  url: string,
  headers: Record<string, string>,
  handlers: TransportHandlers,
): Transport {
  const abort = new AbortController();
  let done = false;
  let opened = false;
  const finish = (code: number, reason: string): void => {
    if (done) return;
    done = true;
    handlers.onClose(code, reason, opened);
  };
  const read = async (): Promise<void> => {
    const response = await fetchImpl(url, { headers, signal: abort.signal });
    if (!response.ok || !response.body) {
      const body = (await response.json().catch(() => ({}))) as { code?: unknown };
      finish(4000 + response.status, typeof body.code === 'string' ? body.code : `HTTP_${response.status}`);
      return;
    }
    opened = true;
    handlers.onOpen();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let end: [number, string] = [1006, 'stream ended'];
    for (;;) {
      const chunk = await reader.read();
      if (chunk.done || done) break;
      handlers.onActivity();
      buffer += chunk.value;
      let cut;
      while ((cut = buffer.indexOf('\n\n')) >= 0) {
        const data = buffer
          .slice(0, cut)
          .split('\n')
          .filter((line) => line.startsWith('data: '))
          .map((line) => line.slice(6))
          .join('\n');
        buffer = buffer.slice(cut + 2);
        const frame = data === '' ? undefined : parseServerFrame(data);
        if (!frame) continue;
        if (frame.op === 'reconnect') end = [1001, frame.reason];
        // An error naming a channel is that subscription's, and the stream goes on.
        if (frame.op === 'error' && frame.id === undefined && frame.channel === undefined && frame.code in STREAM_END) {
          end = [STREAM_END[frame.code] ?? 1011, frame.code];
        } else handlers.onFrame(frame);
      }
    }
    finish(...end);
  };
  read().catch(() => finish(1006, 'network error'));
  return {
    kind: 'sse',
    send: () => undefined,
    close: () => {
      done = true;
      abort.abort();
    },
  };
}
