// What the one shared client speaks to each server. Every dialect runs over a bare `ws` socket, so
// the client side costs the same for every peer; for Socket.IO the client speaks Engine.IO v4 /
// Socket.IO v5 packets itself (what socket.io-client sends over its websocket transport).

export type PeerName = 'ripple' | 'socketio' | 'ws';

export interface Dialect {
  /** The URL a client connects to. */
  url(port: number, token: string): string;
  /** The first frame the client sends once the socket opened, if any. */
  hello(token: string): string | undefined;
  /** True for the frame that says the connection is authenticated. */
  isAuthenticated(frame: string): boolean;
  /** True for a frame that refuses the connection or a subscription. */
  isRefusal(frame: string): boolean;
  /** The frame that subscribes to bench channel `channel` (`c12`). */
  subscribe(channel: string, id: number): string;
  /** True for a subscription's acknowledgement. */
  isSubscribed(frame: string): boolean;
  /** The reply a frame needs at once (Engine.IO ping → pong), if any. */
  reply(frame: string): string | undefined;
}

const rippleFrames = {
  isAuthenticated: (f: string) => f.startsWith('{"op":"welcome"'),
  isRefusal: (f: string) => f.startsWith('{"op":"error"'),
  isSubscribed: (f: string) => f.startsWith('{"op":"ack"'),
  reply: () => undefined,
  hello: () => undefined,
};

export const dialects: Record<PeerName, Dialect> = {
  // Ripple's gateway (docs/protocol.md): bench channel c12 is `creator:c12`.
  ripple: {
    ...rippleFrames,
    url: (port, token) => `ws://127.0.0.1:${port}/ws?access_token=${token}`,
    subscribe: (channel, id) => JSON.stringify({ op: 'subscribe', id: String(id), channel: `creator:${channel}` }),
  },
  // The raw ws ceiling speaks the same frames (ws-server.ts), with bare channel names.
  ws: {
    ...rippleFrames,
    url: (port, token) => `ws://127.0.0.1:${port}/ws?access_token=${token}`,
    subscribe: (channel, id) => JSON.stringify({ op: 'subscribe', id: String(id), channel }),
  },
  // Engine.IO v4 packets: 0 open, 2 ping, 3 pong, 4 message; Socket.IO v5 inside a message:
  // 0 CONNECT (with auth), 2 EVENT, 3 ACK, 4 CONNECT_ERROR. Rooms are the bench channels.
  socketio: {
    url: (port) => `ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket`,
    hello: (token) => `40${JSON.stringify({ token })}`,
    isAuthenticated: (f) => f.startsWith('40'),
    isRefusal: (f) => f.startsWith('44'),
    subscribe: (channel, id) => `42${id}${JSON.stringify(['join', channel])}`,
    isSubscribed: (f) => f.startsWith('43'),
    reply: (f) => (f === '2' ? '3' : undefined),
  },
};

/**
 * Every published payload is exactly PAYLOAD_BYTES long: `t<scheduled send time, ms>:` padded with
 * `x`. The client finds `"t<digits>` in whatever frame carries it.
 */
export const PAYLOAD_BYTES = 100;
export function payload(scheduledAt: number): string {
  const head = `t${scheduledAt}:`;
  return head + 'x'.repeat(PAYLOAD_BYTES - head.length);
}
const STAMP = /"t(\d{13}):/;
/** The scheduled send time carried by an event frame, or undefined for any other frame. */
export function stampOf(frame: string): number | undefined {
  const m = STAMP.exec(frame);
  return m === null ? undefined : Number(m[1]);
}
