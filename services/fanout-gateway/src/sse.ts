import { randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authorizeChannel, extractBearerToken } from '@ripple/auth';
import type { AccessVerifier, JwtSecret } from '@ripple/auth';
import { RippleError } from '@ripple/errors';
import type { StreamPosition } from '@ripple/registry';
import { OFFSET_PATTERN } from '@ripple/registry';
import type { Connection, Connections } from './connections.js';
import type { GatewayMetrics } from './metrics.js';
import { Subscriptions } from './subscriptions.js';
import type { SubscriptionDeps } from './subscriptions.js';
import { gapFrame } from './protocol.js';
import { unsubscribedFrame } from './membership.js';

export interface SseDeps extends SubscriptionDeps {
  /** Verifies chat subscription tokens (HS256, JWT_SECRET shared with chat-service). */
  readonly jwtSecret: JwtSecret;
  /** Verifies access tokens (HS256 or RS256, JWT_* configuration). */
  readonly verifyAccess: AccessVerifier;
  readonly connections: Connections;
  readonly metrics: GatewayMetrics;
  readonly maxSubscriptions: number;
  readonly sendBufferBytes: number;
  readonly keepAliveMs: number;
  readonly isDraining: () => boolean;
}

type Positions = Record<string, [string, string]>;

/** The SSE event id: every channel's position, so `Last-Event-ID` recovers all of them. */
function encodeId(positions: Positions): string {
  return Buffer.from(JSON.stringify(positions)).toString('base64url');
}

function decodeId(id: string | undefined): Positions {
  if (id === undefined || id === '') return {};
  try {
    const value = JSON.parse(Buffer.from(id, 'base64url').toString('utf8')) as unknown;
    if (typeof value !== 'object' || value === null) return {};
    const out: Positions = {};
    for (const [channel, pos] of Object.entries(value)) {
      if (
        Array.isArray(pos) &&
        typeof pos[0] === 'string' &&
        OFFSET_PATTERN.test(pos[0]) &&
        typeof pos[1] === 'string'
      ) {
        out[channel] = [pos[0], pos[1]];
      }
    }
    return out;
  } catch {
    return {};
  }
}

function parseChannels(raw: unknown): string[] {
  if (typeof raw !== 'string' || raw.trim() === '') {
    throw new RippleError('GW_BAD_REQUEST', 'channels is required: /sse?channels=creator:u1,post:p1', { status: 400 });
  }
  return [...new Set(raw.split(',').map((c) => c.trim()))];
}

/**
 * `GET /sse?channels=a,b[&access_token=][&subscription_token=]`: the same events over
 * Server-Sent Events, with the same authentication and authorization as the WebSocket.
 * Recovery uses `Last-Event-ID` (or `?last_event_id=`).
 */
export function installSse(app: FastifyInstance, deps: SseDeps): void {
  app.get('/sse', async (request: FastifyRequest, reply) => {
    if (deps.isDraining()) throw new RippleError('GW_DRAINING', 'node is draining; reconnect', { status: 503 });
    const query = request.query as Record<string, unknown>;
    const token = extractBearerToken(
      request.headers.authorization,
      typeof query.access_token === 'string' ? query.access_token : undefined,
    );
    if (token === undefined) throw new RippleError('AUTH_TOKEN_MISSING', 'send an access token', { status: 401 });
    const claims = await deps.verifyAccess(token);
    const channels = parseChannels(query.channels);
    const own = `user:${claims.sub}`;
    if (!channels.includes(own)) channels.unshift(own);
    if (channels.length > deps.maxSubscriptions) {
      throw new RippleError('GW_TOO_MANY_SUBSCRIPTIONS', `at most ${deps.maxSubscriptions} channels`, { status: 400 });
    }
    const subscriptionToken = typeof query.subscription_token === 'string' ? query.subscription_token : undefined;
    for (const channel of channels) {
      try {
        await authorizeChannel(deps.jwtSecret, claims.sub, channel, subscriptionToken, deps.marks);
      } catch (err) {
        if (err instanceof RippleError)
          throw new RippleError(err.code, err.message, { status: err.status === 500 ? 403 : err.status });
        throw err;
      }
    }
    const lastEventId = request.headers['last-event-id'] ?? query.last_event_id;
    const previous = decodeId(typeof lastEventId === 'string' ? lastEventId : undefined);

    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    const positions: Positions = {};
    let closed = false;
    const write = (text: string): void => {
      if (closed) return;
      if (raw.writableLength > deps.sendBufferBytes) {
        deps.metrics.slowConsumerCloses.inc();
        raw.end('event: error\ndata: {"op":"error","code":"GW_SLOW_CONSUMER","message":"slow consumer"}\n\n');
        return;
      }
      raw.write(text);
    };
    const subscriptions = new Subscriptions(deps, {
      event: (f) => {
        positions[f.channel] = [f.offset, f.epoch];
        write(`id: ${encodeId(positions)}\nevent: event\ndata: ${f.frame}\n\n`);
      },
      gap: (channel, position) => {
        positions[channel] = [position.offset, position.epoch];
        write(`id: ${encodeId(positions)}\nevent: gap\ndata: ${JSON.stringify(gapFrame(channel, position))}\n\n`);
      },
    });
    const connection: Connection = {
      id: randomUUID(),
      userId: claims.sub,
      channels: () => subscriptions.names(),
      moveAway: () => {
        write('event: reconnect\ndata: {"op":"reconnect","reason":"node draining"}\n\n');
        raw.end();
      },
      // Membership hook: the channel leaves the stream and its event id (Last-Event-ID) at once.
      revoke: (channel, code, message) => {
        const removed = subscriptions.remove(channel);
        Reflect.deleteProperty(positions, channel);
        const frame = JSON.stringify(unsubscribedFrame(channel, code, message));
        write(`id: ${encodeId(positions)}\nevent: unsubscribed\ndata: ${frame}\n\n`);
        return removed;
      },
    };
    const keepAlive = setInterval(() => write(': keep-alive\n\n'), deps.keepAliveMs);
    raw.on('close', () => {
      closed = true;
      clearInterval(keepAlive);
      void subscriptions.removeAll().then(() => deps.connections.remove(connection));
    });
    await deps.connections.add(connection);
    write(
      `event: welcome\ndata: ${JSON.stringify({ op: 'welcome', connectionId: connection.id, user: claims.sub })}\n\n`,
    );
    for (const channel of channels) {
      const prior = previous[channel];
      const since: StreamPosition | undefined = prior ? { offset: prior[0], epoch: prior[1] } : undefined;
      await subscriptions.add(channel, since, (s) => {
        positions[channel] = [since && s.recovered ? since.offset : s.position.offset, s.position.epoch];
        const ack = {
          op: 'ack',
          channel,
          offset: s.position.offset,
          epoch: s.position.epoch,
          ...(since && { recovered: s.recovered }),
        };
        write(`id: ${encodeId(positions)}\nevent: ack\ndata: ${JSON.stringify(ack)}\n\n`);
      });
    }
  });
}
