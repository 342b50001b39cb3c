import type { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { WebSocket } from 'ws';
import { extractBearerToken } from '@ripple/auth';
import { originAllowed, writeErrorAnswer } from '@ripple/http';
import type { AllowedOrigins } from '@ripple/http';
import { GatewayHttpErrors, WebSocketSchema } from './http-contract.js';
import { ConnectionLifecycle, authErrorCode } from './lifecycle.js';
import type { LifecycleDeps } from './lifecycle.js';
import { Heartbeats } from './heartbeats.js';
import { refuseForeignOrigin } from './origin-check.js';
import { CloseCodes, frameText } from './protocol.js';
import { utf8Of } from './sink.js';
import { upgradeFastPath } from './upgrade.js';
import type { ChannelEnded, ConnectionSink, FramePosition } from './sink.js';

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

/**
 * Frames sent to one socket within a tick (a routed batch delivers many at once) leave in one
 * write: the TCP socket under `ws` is corked at the first and uncorked once the tick's work is
 * done (ws corks around each frame itself; stream corks nest).
 */
function webSocketSink(socket: WebSocket): ConnectionSink {
  const tcp = (socket as unknown as { _socket?: Socket })._socket;
  let corked = false;
  const uncork = (): void => {
    corked = false;
    tcp?.uncork();
  };
  return {
    send: (_op, text, position) => {
      if (socket.readyState !== socket.OPEN) return;
      if (tcp && !corked) {
        corked = true;
        tcp.cork();
        process.nextTick(uncork);
      }
      // An event frame shared by a channel's sockets is encoded once, not once per socket.
      if (position && isSharedFrame(position, text)) socket.send(utf8Of(position), { binary: false });
      else socket.send(text);
    },
    bufferedAmount: () => socket.bufferedAmount,
    close: (code, reason) => {
      if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(code, reason);
    },
  };
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
 * the header) and the header as `field` (`headers.sec-websocket-key`), then closes the socket.
 */
function refuseHandshake(socket: Duplex, reason: string): void {
  const header = /(Upgrade|Sec-WebSocket-[A-Za-z]+) header/.exec(reason)?.[1]?.toLowerCase();
  const { code, status } = GatewayHttpErrors.handshakeInvalid;
  writeErrorAnswer(socket, status, {
    code,
    message: `not a WebSocket handshake: ${reason}`,
    ...(header !== undefined && { field: `headers.${header}` }),
  });
  socket.end();
}

/**
 * `GET /ws`: the WebSocket transport of the connection lifecycle (docs/protocol.md). Upgrades the
 * route would accept take the fast path (upgrade.ts); the others (`routed`, @fastify/websocket's
 * upgrades) go through the route.
 */
export function installWebSocket(
  app: FastifyInstance,
  deps: LifecycleDeps & { readonly pingIntervalMs: number; readonly webSocketOrigins: AllowedOrigins },
  routed: EventEmitter,
): void {
  const originOk = (origin: string | undefined) => originAllowed(deps.webSocketOrigins, origin);
  // A handshake `ws` refuses (a bad key, version or Upgrade header) is answered with the shared
  // error body, not ws's text/html one.
  app.websocketServer.on('wsClientError', (err: Error, socket: Duplex) => refuseHandshake(socket, err.message));
  const heartbeats = new Heartbeats(deps.pingIntervalMs);
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
    (socket, query, request) => webSocketConnection(deps, heartbeats, socket, tokenOf(request.headers, query)),
  );
}

/** One accepted WebSocket: its lifecycle, heartbeat and frames. */
function webSocketConnection(
  deps: LifecycleDeps,
  heartbeats: Heartbeats,
  socket: WebSocket,
  token: string | undefined,
): void {
  socket.on('error', () => socket.terminate());
  if (deps.isDraining()) {
    socket.close(CloseCodes.goingAway, 'node draining');
    return;
  }
  const lifecycle = new ConnectionLifecycle(deps, webSocketSink(socket));
  heartbeats.add(socket);
  socket.on('pong', () => heartbeats.answered(socket));
  socket.on('message', (data, isBinary) => {
    heartbeats.answered(socket); // any frame proves the peer alive
    if (isBinary) {
      deps.metrics.errors.inc({ code: 'GW_BINARY_FRAME' });
      socket.send(JSON.stringify({ op: 'error', code: 'GW_BINARY_FRAME', message: 'send JSON text frames' }));
      return;
    }
    lifecycle.receive(frameText(data));
  });
  socket.on('close', () => {
    heartbeats.remove(socket);
    void lifecycle.release();
  });
  lifecycle.authenticate(token).then(
    (claims) => lifecycle.establish(claims),
    (err: unknown) => {
      const code = authErrorCode(err);
      deps.metrics.errors.inc({ code });
      lifecycle.close(CloseCodes.unauthorized, code);
    },
  );
}
