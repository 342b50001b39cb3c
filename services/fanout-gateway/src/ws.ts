import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { extractBearerToken } from '@ripple/auth';
import { ConnectionLifecycle, authErrorCode } from './lifecycle.js';
import type { LifecycleDeps } from './lifecycle.js';
import { CloseCodes, frameText } from './protocol.js';
import type { ConnectionSink } from './sink.js';

function tokenOf(request: FastifyRequest): string | undefined {
  const query = request.query as { access_token?: unknown };
  return extractBearerToken(
    request.headers.authorization,
    typeof query.access_token === 'string' ? query.access_token : undefined,
  );
}

function webSocketSink(socket: WebSocket): ConnectionSink {
  return {
    send: (_op, text) => {
      if (socket.readyState === socket.OPEN) socket.send(text);
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
  deps: LifecycleDeps & { readonly pingIntervalMs: number },
): void {
  app.get('/ws', { websocket: true }, (socket: WebSocket, request) => {
    if (deps.isDraining()) {
      socket.close(CloseCodes.goingAway, 'node draining');
      return;
    }
    const lifecycle = new ConnectionLifecycle(deps, webSocketSink(socket));
    let alive = true;
    socket.on('pong', () => (alive = true));
    const pinger = setInterval(() => {
      if (!alive) {
        socket.terminate();
        return;
      }
      alive = false;
      socket.ping();
    }, deps.pingIntervalMs);
    socket.on('message', (data, isBinary) => {
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
