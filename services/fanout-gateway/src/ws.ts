import type { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { extractBearerToken } from '@ripple/auth';
import { originAllowed, writeErrorAnswer } from '@ripple/http';
import type { AllowedOrigins } from '@ripple/http';
import { GatewayHttpErrors, WEBSOCKET_VERSIONS, WebSocketSchema } from './http-contract.js';
import { ConnectionLifecycle, authErrorCode } from './lifecycle.js';
import type { LifecycleDeps } from './lifecycle.js';
import { Heartbeats } from './heartbeats.js';
import { refuseForeignOrigin } from './origin-check.js';
import { CloseCodes, frameText } from './protocol.js';
import { upgradeFastPath } from './upgrade.js';
import type { ChannelEnded, ConnectionSink, FramePosition } from './sink.js';
import { FrameRuns, sharedTextFrame } from './ws-frame.js';
import { PendingFrames } from './pending-frames.js';
import type { SendBudget, SendQueue } from './send-budget.js';

/** True when `position` carries the event frame `text` (one object shared by the channel's sockets). */
function isSharedFrame(
  position: FramePosition | ChannelEnded,
  text: string,
): position is FramePosition & { readonly frame: string } {
  return 'offset' in position && position.frame === text;
}

function tokenOf(headers: IncomingHttpHeaders, query: unknown): string | undefined {
  const token = (query as { access_token?: unknown }).access_token;
  return extractBearerToken(headers.authorization, typeof token === 'string' ? token : undefined);
}

/** The sinks corked in this tick, uncorked together by one `nextTick` (not a tick object and callback per socket). */
let corkedInTick: WebSocketSink[] = [];
/** The shared frames of this tick: the runs the corked sinks write at its end. */
const tickFrames = new FrameRuns();
/** True while `flushCorked` runs: a frame sent meanwhile is written at once, not added to a run. */
let flushingTick = false;

function flushCorked(): void {
  const sinks = corkedInTick;
  corkedInTick = [];
  flushingTick = true;
  try {
    for (const sink of sinks) sink.flush();
  } finally {
    flushingTick = false;
    tickFrames.clear();
  }
}

/**
 * Ends this tick's corks now rather than at its end, so every socket's queued bytes are counted
 * (the send budget's `admit` calls it: a batch routed in the same tick as the one before must see
 * what that one queued). Does nothing while the tick's flush runs.
 */
export function flushWebSocketWrites(): void {
  if (corkedInTick.length > 0 && !flushingTick) flushCorked();
}

/**
 * The WebSocket transport of a connection. An event frame shared by a channel's sockets goes out as
 * one complete WebSocket frame made once for all of them (`sharedTextFrame`), written to the TCP
 * socket as it is: `ws`'s Sender would make a header buffer, two option objects, an array and two
 * queued writes per socket and frame, which a burst to 10,000 sockets turned into hundreds of MB
 * of short-lived heap. Other frames go through `ws`; both write synchronously to the same stream
 * (no compression is negotiated: `installWebSocket` refuses permessage-deflate), so the order
 * holds. Frames sent within a tick (a routed batch delivers many at once) leave in one write: the
 * TCP socket is corked at the first and uncorked once the tick's work is done (stream corks nest).
 * Consecutive shared frames of a tick (a channel's events, each handed to all of its sockets
 * before the next) are not written one by one: the sink keeps the run's place in `tickFrames` and
 * writes it at the end of the tick as one Buffer made once for every socket with the same run, up
 * to the socket's high-water mark (a corked stream write keeps an entry object per frame until the
 * uncork: a 100-event batch to 10,000 sockets held a million of them, promoted to old space).
 * A socket whose kernel buffer is full (`writableNeedDrain`) gets no more frames: they wait in
 * `pending`, in order, as references, and are handed over at `drain`. `bufferedAmount` counts both,
 * so the send-buffer bound (4009) holds whatever waits, except events read from history while they
 * wait, up to one replay's worth (pending-frames.ts `pacedBytes`); the send budget counts them. `held`: the
 * upgrade corked the socket (upgrade.ts), so its `101` answer leaves in the same write as the
 * first frame (`welcome`, or the close). `budget`: the gateway-wide send budget, told what the
 * socket holds at the end of each tick it wrote in and each `drain`, and released when the socket
 * closes. `historyFrames`: the history limit (`HISTORY_RECOVERY_LIMIT`), in frames.
 */
class WebSocketSink implements ConnectionSink, SendQueue {
  /** Set once the connection has a lifecycle: what the send budget closes when it evicts this socket. */
  lifecycle: ConnectionLifecycle | undefined;
  /** The TCP socket under `ws` (its `_socket`, set before the socket is handed over). */
  private readonly tcp: Duplex;
  /** Frames the socket could not take yet (shared WebSocket frames, or a frame's JSON). */
  private pending: PendingFrames<Buffer | string> | undefined;
  /** True while the socket is corked until the end of the tick (or, `held`, until a first frame). */
  private corked: boolean;
  private flushing = false;
  /** This tick's run of shared frames not written yet: `runCount` entries of `tickFrames` from `runStart`. */
  private runStart = 0;
  private runCount = 0;

  constructor(
    private readonly socket: WebSocket,
    held: boolean,
    private readonly budget: SendBudget | undefined,
    private readonly historyFrames: number,
  ) {
    this.tcp = (socket as unknown as { _socket: Duplex })._socket;
    this.corked = held;
  }

  send(_op: string, text: string, position?: FramePosition | ChannelEnded): void {
    if (this.socket.readyState !== this.socket.OPEN) return;
    const shared = position && isSharedFrame(position, text) ? position : undefined;
    const frame = shared ? sharedTextFrame(shared) : text;
    const index = typeof frame === 'string' || flushingTick || this.pending ? -1 : tickFrames.indexOf(frame);
    if (index >= 0 && this.extendRun(index)) return;
    this.endRun();
    if (this.pending || this.tcp.writableNeedDrain) {
      this.wait(frame, position);
      return;
    }
    this.corkTick();
    if (index < 0) this.write(frame);
    else {
      this.runStart = index;
      this.runCount = 1;
    }
  }

  bufferedAmount(): number {
    const run = this.runCount > 0 ? tickFrames.bytes(this.runStart, this.runCount) : 0;
    const pending = this.pending ? this.pending.bytes - this.pending.pacedBytes() : 0;
    return this.socket.bufferedAmount + pending + run;
  }

  /** SendQueue: every byte queued, the events from history waiting in `pending` included. */
  queuedBytes(): number {
    return this.bufferedAmount() + (this.pending?.pacedBytes() ?? 0);
  }

  /** SendQueue: the budget stayed full; closes as a slow consumer (4009) through the lifecycle. */
  evict(): void {
    if (this.lifecycle) this.lifecycle.closeForSendBudget();
    else this.close(CloseCodes.slowConsumer, 'slow consumer');
  }

  historyHandedOver(): Promise<void> {
    return this.pending?.historyHandedOver() ?? Promise.resolve();
  }

  /**
   * The socket closed (either side): its bytes leave the send budget; what still waits is dropped
   * (a subscribe waiting in `historyHandedOver` goes on, and finds the connection closed).
   */
  detach(): void {
    this.budget?.release(this);
    this.pending?.clear();
    this.pending = undefined;
  }

  close(code: number, reason: string): void {
    const { socket } = this;
    if (socket.readyState !== socket.OPEN && socket.readyState !== socket.CONNECTING) {
      this.detach();
      return;
    }
    this.corkTick();
    // A slow consumer's backlog is dropped; any other close lets the frames before it go first.
    if (code !== CloseCodes.slowConsumer) {
      this.endRun();
      this.pending?.handOver((frame) => this.write(frame));
    }
    this.runCount = 0;
    this.detach();
    socket.close(code, reason);
  }

  /** Ends the tick's cork: everything written since leaves in one write. */
  flush(): void {
    this.flushing = false;
    this.endRun();
    if (this.corked) {
      this.corked = false;
      this.tcp.uncork();
    }
    this.budget?.update(this);
  }

  private corkTick(): void {
    if (this.flushing) return;
    if (!this.corked) this.tcp.cork();
    this.corked = true;
    this.flushing = true;
    if (corkedInTick.push(this) === 1) process.nextTick(flushCorked);
  }

  /**
   * Adds the frame at `index` of `tickFrames` to the run when it is the run's next one and the run
   * stays within the socket's high-water mark (beyond it, frames wait in `pending` as before).
   */
  private extendRun(index: number): boolean {
    if (this.runCount === 0 || this.runStart + this.runCount !== index) return false;
    if (tickFrames.bytes(this.runStart, this.runCount + 1) > this.tcp.writableHighWaterMark) return false;
    this.runCount += 1;
    return true;
  }

  /** Writes the run (one Buffer shared by the sockets with the same run). */
  private endRun(): void {
    if (this.runCount === 0) return;
    const run = tickFrames.joined(this.runStart, this.runCount);
    this.runCount = 0;
    this.tcp.write(run);
  }

  private write(frame: Buffer | string): void {
    if (typeof frame === 'string') this.socket.send(frame);
    else this.tcp.write(frame);
  }

  /** Queues `frame` behind `pending`; `position`: where it leaves its channel (`send`). */
  private wait(frame: Buffer | string, position: FramePosition | ChannelEnded | undefined): void {
    const first = !this.pending;
    if (!this.pending) {
      this.pending = new PendingFrames(this.historyFrames);
      this.tcp.once('drain', () => this.drained());
    }
    this.pending.push(frame, position);
    if (first) this.budget?.update(this);
  }

  /** Writes pending frames, in order, until the socket's buffer fills again. */
  private drained(): void {
    const pending = this.pending;
    if (!pending || this.socket.readyState !== this.socket.OPEN) return;
    this.corkTick();
    if (pending.handOver((frame) => this.write(frame), this.tcp) === 0) this.pending = undefined;
    else this.tcp.once('drain', () => this.drained());
    this.budget?.update(this);
  }
}

/**
 * Lets go of the upgrade's HTTP objects, which @fastify/websocket leaves reachable from the socket
 * for its whole life: the ServerResponse it made to route the upgrade (still the TCP socket's
 * `_httpMessage`, and it holds the IncomingMessage) and, through its socket `error` listener, the
 * fastify request and reply. About 2.5 KiB of heap per connection. A socket error ends the socket,
 * as that listener's default handler did (the `close` that follows releases the connection).
 */
function releaseUpgradeRequest(socket: WebSocket): void {
  const tcp = (socket as unknown as { _socket?: Socket & { _httpMessage?: ServerResponse | null } })._socket;
  tcp?._httpMessage?.detachSocket(tcp);
  socket.removeAllListeners('error');
}

/**
 * Answers a refused WebSocket handshake: 400 GW_HANDSHAKE_INVALID with `ws`'s reason (which names
 * the header) and the header as `field` (`headers.sec-websocket-key`), and for a missing or unknown
 * version the `Sec-WebSocket-Version` header listing the ones spoken; then closes the socket.
 */
function refuseHandshake(socket: Duplex, reason: string): void {
  const header = /(Upgrade|Sec-WebSocket-[A-Za-z]+) header/.exec(reason)?.[1]?.toLowerCase();
  const { code, status } = GatewayHttpErrors.handshakeInvalid;
  writeErrorAnswer(
    socket,
    status,
    {
      code,
      message: `not a WebSocket handshake: ${reason}`,
      ...(header !== undefined && { field: `headers.${header}` }),
    },
    // RFC 6455 4.4: a version the server does not speak is answered with the versions it does.
    header === 'sec-websocket-version' ? { 'Sec-WebSocket-Version': WEBSOCKET_VERSIONS } : {},
  );
  socket.end();
}

/**
 * `GET /ws`: the WebSocket transport of the connection lifecycle (docs/protocol.md). Upgrades the
 * route would accept take the fast path (upgrade.ts); the others (`routed`, @fastify/websocket's
 * upgrades) go through the route.
 */
export function installWebSocket(
  app: FastifyInstance,
  deps: LifecycleDeps & {
    readonly pingIntervalMs: number;
    readonly webSocketOrigins: AllowedOrigins;
    /** The gateway-wide bound on bytes queued for sockets (send-budget.ts); none: unbounded. */
    readonly sendBudget?: SendBudget;
  },
  routed: EventEmitter,
): void {
  // Shared frames are written beside `ws`'s own (WebSocketSink): with permessage-deflate its Sender
  // would queue frames while compressing, and a shared frame could overtake them.
  if (app.websocketServer.options.perMessageDeflate) throw new Error('the gateway does not do permessage-deflate');
  const originOk = (origin: string | undefined) => originAllowed(deps.webSocketOrigins, origin);
  // A handshake `ws` refuses (a bad key, version or Upgrade header) is answered with the shared
  // error body, not ws's text/html one.
  app.websocketServer.on('wsClientError', (err: Error, socket: Duplex) => refuseHandshake(socket, err.message));
  const heartbeats = new Heartbeats(deps.pingIntervalMs, {
    onTerminate: () => deps.metrics.heartbeatTerminations.inc(),
  });
  app.addHook('onClose', (_app, done) => {
    heartbeats.stop();
    done();
  });
  app.route({
    method: 'GET',
    url: '/ws',
    schema: WebSocketSchema,
    // Refused before the upgrade: a page of another origin never gets a socket.
    preValidation: refuseForeignOrigin(deps.webSocketOrigins),
    // Connections are counted by metrics, not logged one by one: an `incoming request` line per
    // upgrade was a synchronous JSON write per connect (a reconnect storm is thousands per second).
    logLevel: 'warn',
    // A plain HTTP request (no upgrade): 426 with the shared error body, not an empty 404. (No
    // `Upgrade` header on it: fetch takes such an answer for a protocol switch and hangs.)
    handler: () => {
      throw GatewayHttpErrors.upgradeRequired.error('GET /ws needs a WebSocket handshake (Upgrade: websocket)');
    },
    wsHandler: (socket: WebSocket, request) => {
      releaseUpgradeRequest(socket);
      webSocketConnection(deps, heartbeats, socket, tokenOf(request.headers, request.query));
    },
  });
  upgradeFastPath(
    app.server,
    routed,
    app.websocketServer,
    { isDraining: deps.isDraining, originAllowed: originOk },
    (socket, query, request, acceptedAt) =>
      webSocketConnection(deps, heartbeats, socket, tokenOf(request.headers, query), true, acceptedAt),
  );
}

/** What a socket's event listeners need; one per socket, found through `kConnection`. */
class WebSocketConnection {
  constructor(
    readonly lifecycle: ConnectionLifecycle,
    readonly sink: WebSocketSink,
    readonly heartbeats: Heartbeats,
    readonly metrics: LifecycleDeps['metrics'],
  ) {}
}

const kConnection = Symbol('ripple.connection');
type Attached = WebSocket & { [kConnection]: WebSocketConnection };

// The listeners are shared by every socket (`this` is the socket): no closures per connection.
function onSocketError(this: WebSocket): void {
  this.terminate();
}

function connectionOf(socket: WebSocket): WebSocketConnection {
  return (socket as Attached)[kConnection];
}

function onPong(this: WebSocket): void {
  connectionOf(this).heartbeats.answered(this);
}

function onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  const c = connectionOf(this);
  c.heartbeats.answered(this); // any frame proves the peer alive
  if (isBinary) {
    c.metrics.errors.inc({ code: 'GW_BINARY_FRAME' });
    c.sink.send('error', JSON.stringify({ op: 'error', code: 'GW_BINARY_FRAME', message: 'send JSON text frames' }));
    return;
  }
  c.lifecycle.receive(frameText(data));
}

function onClose(this: WebSocket): void {
  const c = connectionOf(this);
  c.sink.detach();
  c.heartbeats.remove(this);
  void c.lifecycle.release();
}

/**
 * One accepted WebSocket: its lifecycle, heartbeat and frames. `held`: its TCP socket is corked
 * with the `101` answer in it (the fast path), to leave with the first frame. `acceptedAt`: when
 * its TCP connection was accepted (ms, `performance.now()`; default now), where its set-up began.
 */
function webSocketConnection(
  deps: LifecycleDeps & { readonly sendBudget?: SendBudget },
  heartbeats: Heartbeats,
  socket: WebSocket,
  token: string | undefined,
  held = false,
  acceptedAt?: number,
): void {
  socket.on('error', onSocketError);
  const sink = new WebSocketSink(socket, held, deps.sendBudget, deps.historyLimit);
  if (deps.isDraining()) {
    sink.close(CloseCodes.goingAway, 'node draining');
    return;
  }
  const lifecycle = new ConnectionLifecycle(deps, sink, acceptedAt);
  sink.lifecycle = lifecycle;
  (socket as Attached)[kConnection] = new WebSocketConnection(lifecycle, sink, heartbeats, deps.metrics);
  heartbeats.add(socket);
  socket.on('pong', onPong);
  socket.on('message', onMessage);
  socket.on('close', onClose);
  lifecycle.authenticate(token).then(
    (claims) => lifecycle.establish(claims),
    (err: unknown) => {
      const code = authErrorCode(err);
      deps.metrics.errors.inc({ code });
      lifecycle.close(CloseCodes.unauthorized, code);
    },
  );
}
