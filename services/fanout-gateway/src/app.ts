import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import websocket from '@fastify/websocket';
import type { WebSocket } from 'ws';
import { extractBearerToken } from '@ripple/auth';
import type { AccessVerifier, JwtSecret } from '@ripple/auth';
import { isRippleError } from '@ripple/errors';
import { serviceShell } from '@ripple/http';
import type { ReadinessCheck } from '@ripple/http';
import type { Registry } from '@ripple/telemetry';
import type { Connections } from './connections.js';
import type { GatewayMetrics } from './metrics.js';
import { CloseCodes, frameText } from './protocol.js';
import { Session } from './session.js';
import type { SessionLimits } from './session.js';
import { installSse } from './sse.js';
import { unsubscribedFrame } from './membership.js';
import type { SubscriptionDeps } from './subscriptions.js';

export interface GatewayAppDeps extends SubscriptionDeps {
  readonly connections: Connections;
  /** Verifies chat subscription tokens (HS256, JWT_SECRET shared with chat-service). */
  readonly jwtSecret: JwtSecret;
  /** Verifies access tokens (HS256 or RS256, JWT_* configuration). */
  readonly verifyAccess: AccessVerifier;
  readonly logger: FastifyBaseLogger;
  readonly registry: Registry;
  readonly metrics: GatewayMetrics;
  readonly checks: Record<string, ReadinessCheck>;
  readonly limits: SessionLimits & { readonly maxPayloadBytes: number };
  /** The server pings every socket this often; a socket that missed the previous pong is dropped. */
  readonly pingIntervalMs: number;
  readonly isDraining: () => boolean;
}

function tokenOf(request: FastifyRequest): string | undefined {
  const query = request.query as { access_token?: unknown };
  return extractBearerToken(
    request.headers.authorization,
    typeof query.access_token === 'string' ? query.access_token : undefined,
  );
}

export async function buildApp(deps: GatewayAppDeps): Promise<FastifyInstance> {
  const app = serviceShell({
    logger: deps.logger,
    metrics: deps.registry,
    checks: deps.checks,
    isDraining: deps.isDraining,
  });
  await app.register(websocket, { options: { maxPayload: deps.limits.maxPayloadBytes } });
  installSse(app, {
    ...deps,
    maxSubscriptions: deps.limits.maxSubscriptions,
    sendBufferBytes: deps.limits.sendBufferBytes,
    keepAliveMs: deps.pingIntervalMs,
  });

  app.get('/ws', { websocket: true }, (socket: WebSocket, request) => {
    if (deps.isDraining()) {
      socket.close(CloseCodes.goingAway, 'node draining');
      return;
    }
    // Frames that arrive before `welcome` wait here, in order, and are handled after it.
    const early: string[] = [];
    let session: Session | undefined;
    let starting: Session | undefined;
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
      const text = frameText(data);
      if (session) session.receive(text);
      else early.push(text);
    });
    socket.on('close', () => {
      clearInterval(pinger);
      void (session ?? starting)?.release();
    });

    const token = tokenOf(request);
    const verified = token === undefined ? Promise.reject(new Error('no token')) : deps.verifyAccess(token);
    verified
      .then(async (claims) => {
        if (socket.readyState !== socket.OPEN) return;
        const s = new Session(randomUUID(), claims, socket, {
          ...deps,
          hooks: {
            onError: (code) => deps.metrics.errors.inc({ code }),
            onSlowConsumer: () => deps.metrics.slowConsumerCloses.inc(),
            onClosed: (closed) => void deps.connections.remove(connectionOf(closed)),
          },
        });
        starting = s;
        await deps.connections.add(connectionOf(s));
        await s.joinOwnChannel();
        if (s.isClosed) {
          // The peer left during set-up: release() ran before add() finished.
          await deps.connections.remove(connectionOf(s));
          return;
        }
        s.reply({
          op: 'welcome',
          connectionId: s.id,
          node: deps.nodeId,
          user: claims.sub,
          heartbeatMs: deps.pingIntervalMs,
        });
        session = s;
        for (const text of early.splice(0)) s.receive(text);
      })
      .catch((err: unknown) => {
        const code = isRippleError(err) ? err.code : 'AUTH_TOKEN_MISSING';
        deps.metrics.errors.inc({ code });
        if (starting) {
          deps.logger.error({ err }, 'connection set-up failed');
          starting.close(1011, 'GW_INTERNAL');
        } else socket.close(CloseCodes.unauthorized, code);
      });
  });
  return app;
}

const connectionViews = new WeakMap<Session, ReturnType<typeof makeConnection>>();

function makeConnection(session: Session) {
  return {
    id: session.id,
    userId: session.user.sub,
    channels: () => session.subscriptions.names(),
    moveAway: () => {
      session.reply({ op: 'reconnect', reason: 'node draining' });
      session.close(CloseCodes.goingAway, 'node draining');
    },
    // Membership hook: the subscription ends before the next frame of the channel is handed out.
    revoke: (channel: string, code: string, message: string) => {
      const removed = session.subscriptions.remove(channel);
      session.reply(unsubscribedFrame(channel, code, message));
      return removed;
    },
  };
}

/** One Connection view per session, so add and remove see the same object. */
function connectionOf(session: Session) {
  let view = connectionViews.get(session);
  if (!view) {
    view = makeConnection(session);
    connectionViews.set(session, view);
  }
  return view;
}
