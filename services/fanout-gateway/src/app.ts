import { randomUUID } from 'node:crypto';
import type { FastifyBaseLogger, FastifyInstance, FastifyRequest } from 'fastify';
import websocket from '@fastify/websocket';
import type { WebSocket } from 'ws';
import { extractBearerToken, verifyAccessToken } from '@ripple/auth';
import type { JwtSecret } from '@ripple/auth';
import { isRippleError } from '@ripple/errors';
import { serviceShell } from '@ripple/http';
import type { ReadinessCheck } from '@ripple/http';
import type { Registry } from '@ripple/telemetry';
import type { LocalHub } from './hub.js';
import type { GatewayMetrics } from './metrics.js';
import { CloseCodes, frameText } from './protocol.js';
import { Session } from './session.js';
import type { SessionLimits } from './session.js';

export interface GatewayAppDeps {
  readonly nodeId: string;
  readonly hub: LocalHub;
  readonly sessions: Set<Session>;
  readonly jwtSecret: JwtSecret;
  readonly logger: FastifyBaseLogger;
  readonly registry: Registry;
  readonly metrics: GatewayMetrics;
  readonly checks: Record<string, ReadinessCheck>;
  readonly limits: SessionLimits & { readonly maxPayloadBytes: number };
  readonly heartbeatMs: number;
}

function tokenOf(request: FastifyRequest): string | undefined {
  const query = request.query as { access_token?: unknown };
  return extractBearerToken(
    request.headers.authorization,
    typeof query.access_token === 'string' ? query.access_token : undefined,
  );
}

export async function buildApp(deps: GatewayAppDeps): Promise<FastifyInstance> {
  const app = serviceShell({ logger: deps.logger, metrics: deps.registry, checks: deps.checks });
  await app.register(websocket, { options: { maxPayload: deps.limits.maxPayloadBytes } });

  app.get('/ws', { websocket: true }, (socket: WebSocket, request) => {
    // Frames that arrive while the token is being verified wait here, in order.
    const early: string[] = [];
    let session: Session | undefined;
    socket.on('message', (data, isBinary) => {
      const text = isBinary ? undefined : frameText(data);
      if (text === undefined) {
        deps.metrics.errors.inc({ code: 'GW_BINARY_FRAME' });
        socket.send(JSON.stringify({ op: 'error', code: 'GW_BINARY_FRAME', message: 'send JSON text frames' }));
        return;
      }
      if (session) session.handleText(text);
      else early.push(text);
    });
    socket.on('close', () => {
      if (session) {
        session.release();
        deps.sessions.delete(session);
      }
    });

    const token = tokenOf(request);
    const verified =
      token === undefined ? Promise.reject(new Error('no token')) : verifyAccessToken(deps.jwtSecret, token);
    verified.then(
      (claims) => {
        if (socket.readyState !== socket.OPEN) return;
        const s = new Session(randomUUID(), claims, socket, deps.hub, deps.limits, {
          onError: (code) => deps.metrics.errors.inc({ code }),
          onSlowConsumer: () => deps.metrics.slowConsumerCloses.inc(),
        });
        session = s;
        deps.sessions.add(s);
        s.join(`user:${claims.sub}`);
        s.reply({
          op: 'welcome',
          connectionId: s.id,
          node: deps.nodeId,
          user: claims.sub,
          heartbeatMs: deps.heartbeatMs,
        });
        for (const text of early.splice(0)) s.handleText(text);
      },
      (err: unknown) => {
        const code = isRippleError(err) ? err.code : 'AUTH_TOKEN_MISSING';
        deps.metrics.errors.inc({ code });
        socket.close(CloseCodes.unauthorized, code);
      },
    );
  });
  return app;
}
