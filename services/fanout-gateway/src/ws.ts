import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { extractBearerToken } from '@ripple/auth';
import { RippleError } from '@ripple/errors';
import { originAllowed } from '@ripple/http';
import type { AllowedOrigins } from '@ripple/http';
import { ConnectionLifecycle, authErrorCode } from './lifecycle.js';
import { Liveness } from './liveness.js';
import type { LifecycleDeps } from './lifecycle.js';
import { CloseCodes, frameText } from './protocol.js';
import { utf8Of } from './sink.js';
import type { ChannelEnded, ConnectionSink, FramePosition } from './sink.js';

/** True when `position` carries the event frame `text` (one object shared by the channel's sockets). */
function isSharedFrame(
  position: FramePosition | ChannelEnded,
  text: string,
): position is FramePosition & { readonly frame: string } {
  return 'offset' in position && position.frame === text;
}

function tokenOf(request: FastifyRequest): string | undefined {
  const query = request.query as { access_token?: unknown };
  return extractBearerToken(
    request.headers.authorization,
    typeof query.access_token === 'string' ? query.access_token : undefined,
  );
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

/** `GET /ws`: the WebSocket transport of the connection lifecycle (docs/protocol.md). */
export function installWebSocket(
  app: FastifyInstance,
  deps: LifecycleDeps & { readonly pingIntervalMs: number; readonly webSocketOrigins: AllowedOrigins },
): void {
  // Refused before the upgrade: a page of another origin never gets a socket.
  const preValidation = (request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
    const origin = request.headers.origin;
    done(
      originAllowed(deps.webSocketOrigins, origin)
        ? undefined
        : new RippleError('GW_ORIGIN_FORBIDDEN', `origin ${origin ?? ''} may not open /ws`, { status: 403 }),
    );
  };
  app.get('/ws', { websocket: true, preValidation }, (socket: WebSocket, request) => {
    if (deps.isDraining()) {
      socket.close(CloseCodes.goingAway, 'node draining');
      return;
    }
    const lifecycle = new ConnectionLifecycle(deps, webSocketSink(socket));
    // A peer silent for two ping intervals is gone (half-open TCP); see Liveness.
    const liveness = new Liveness();
    socket.on('pong', () => liveness.seen());
    const pinger = setInterval(() => {
      if (liveness.tick() === 'dead') socket.terminate();
      else socket.ping();
    }, deps.pingIntervalMs);
    socket.on('message', (data, isBinary) => {
      liveness.seen();
      if (isBinary) {
        deps.metrics.errors.inc({ code: 'GW_BINARY_FRAME' });
        socket.send(JSON.stringify({ op: 'error', code: 'GW_BINARY_FRAME', message: 'send JSON text frames' }));
        return;
      }
      lifecycle.receive(frameText(data));
    });
    socket.on('close', () => {
      clearInterval(pinger);
      void lifecycle.release();
    });
    lifecycle.authenticate(tokenOf(request)).then(
      (claims) => lifecycle.establish(claims),
      (err: unknown) => {
        const code = authErrorCode(err);
        deps.metrics.errors.inc({ code });
        lifecycle.close(CloseCodes.unauthorized, code);
      },
    );
  });
}
