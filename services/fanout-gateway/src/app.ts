import { EventEmitter } from 'node:events';
import type { Server } from 'node:http';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import type { AccessVerifier, JwtSecret } from '@ripple/auth';
import { installCors, serviceShell } from '@ripple/http';
import type { AllowedOrigins, ReadinessCheck } from '@ripple/http';
import type { Registry } from '@ripple/telemetry';
import type { Connections } from './connections.js';
import type { GatewayMetrics } from './metrics.js';
import { GatewaySecuritySchemes } from './http-contract.js';
import type { SendBudget } from './send-budget.js';
import type { SessionLimits } from './session.js';
import { installSse } from './sse.js';
import { installWebSocket } from './ws.js';
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
  /** Browser origins that may read /sse (CORS). */
  readonly corsOrigins: AllowedOrigins;
  /** Browser origins that may open /ws (the upgrade's Origin header); others get 403. */
  readonly webSocketOrigins: AllowedOrigins;
  /** Fault injection: connection set-up waits this long before joining the own channel. */
  readonly setupDelayMs?: number;
  /** The gateway-wide bound on bytes queued for WebSocket clients (send-budget.ts); none: unbounded. */
  readonly sendBudget?: SendBudget;
}

export async function buildApp(deps: GatewayAppDeps): Promise<FastifyInstance> {
  const app = serviceShell({
    logger: deps.logger,
    metrics: deps.registry,
    checks: deps.checks,
    isDraining: deps.isDraining,
    openapi: {
      title: 'fanout-gateway',
      description:
        'The gateway over HTTP: GET /ws (WebSocket) and GET /sse (Server-Sent Events) before the socket or stream starts, and the operational routes. What flows on them: docs/asyncapi-gateway.yaml; the prose: docs/protocol.md.',
      securitySchemes: GatewaySecuritySchemes,
    },
  });
  await installCors(app, deps.corsOrigins);
  // @fastify/websocket gets the upgrades the fast path does not take (upgrade.ts) on this emitter.
  const routedUpgrades = new EventEmitter();
  await app.register(websocket, {
    options: { maxPayload: deps.limits.maxPayloadBytes, server: routedUpgrades as unknown as Server },
  });
  installSse(app, {
    ...deps,
    heartbeatMs: deps.pingIntervalMs,
    onSetupError: (err) => deps.logger.error({ err }, 'connection set-up failed'),
  });

  installWebSocket(
    app,
    {
      ...deps,
      heartbeatMs: deps.pingIntervalMs,
      onSetupError: (err) => deps.logger.error({ err }, 'connection set-up failed'),
    },
    routedUpgrades,
  );
  return app;
}
