import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { authorizeChannel, extractBearerToken } from '@ripple/auth';
import type { AllowedOrigins } from '@ripple/http';
import { RippleError } from '@ripple/errors';
import type { StreamPosition } from '@ripple/registry';
import { OFFSET_PATTERN } from '@ripple/registry';
import { ConnectionLifecycle } from './lifecycle.js';
import type { LifecycleDeps } from './lifecycle.js';
import { GatewayHttpErrors, SseSchema } from './http-contract.js';
import { CloseCodes } from './protocol.js';
import { refuseForeignOrigin } from './origin-check.js';
import type { SendBudget, SendQueue } from './send-budget.js';
import { PendingFrames } from './pending-frames.js';
import type { ChannelEnded, ConnectionSink, FramePosition } from './sink.js';

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
    throw GatewayHttpErrors.badRequest.error('channels is required: /sse?channels=creator:u1,post:p1', {
      field: 'query.channels',
    });
  }
  return [...new Set(raw.split(',').map((c) => c.trim()))];
}

/** What an SSE stream reports, as an `error` event, when the lifecycle closes it with `code`. */
function closeErrorCode(code: number, reason: string): string | undefined {
  switch (code) {
    case CloseCodes.goingAway:
      return undefined; // `reconnect` was sent already
    case CloseCodes.unauthorized:
      return reason;
    case CloseCodes.slowConsumer:
      return 'GW_SLOW_CONSUMER';
    case CloseCodes.rateLimited:
      return 'GW_RATE_LIMITED';
    default:
      return 'GW_INTERNAL';
  }
}

/**
 * The SSE transport of a connection: each frame is written to the HTTP response as an event, its
 * id the channels' positions as of that frame. Once the response's buffer is full
 * (`writableNeedDrain`), events wait in `pending`, in order, and are handed over at `drain`, so a
 * resume's replay (up to the history limit of events at once) leaves at the pace the client
 * reads. `bufferedAmount` is what the response and its TCP socket hold, not yet taken by the
 * kernel (`writableLength`), plus what waits, except events read from history while they wait, up
 * to one replay's worth (pending-frames.ts `pacedBytes`): a reading client far behind gets its
 * whole replay in one stream, then the live events queued behind it. `budget`: the gateway-wide
 * send budget, told what the stream holds (what waits included) after each frame and at each
 * `drain`, and released when the stream closes; when it stays full, it closes the stream as a
 * WebSocket's (slow consumer: what waits is dropped, an `error` event GW_SLOW_CONSUMER follows
 * what was written, then the end; the client resumes with `Last-Event-ID`, the id of the last
 * event it got). `historyFrames`: the history limit (`HISTORY_RECOVERY_LIMIT`), in frames.
 */
class SseSink implements ConnectionSink, SendQueue {
  /** Set once the connection has a lifecycle: what the send budget closes when it evicts this stream. */
  lifecycle: ConnectionLifecycle | undefined;
  /** Events the response could not take yet (their text, id included). */
  private pending: PendingFrames<string> | undefined;
  private awaitingDrain = false;

  constructor(
    private readonly raw: ServerResponse,
    private readonly positions: Positions,
    private readonly budget: SendBudget | undefined,
    private readonly historyFrames: number,
  ) {}

  send(op: string, text: string, position?: FramePosition | ChannelEnded): void {
    const { raw, positions } = this;
    if (raw.writableEnded) return;
    let id = '';
    if (position) {
      if ('ended' in position) Reflect.deleteProperty(positions, position.channel);
      else positions[position.channel] = [position.offset, position.epoch];
      id = `id: ${encodeId(positions)}\n`;
    }
    const event = `${id}event: ${op}\ndata: ${text}\n\n`;
    if (this.pending || raw.writableNeedDrain)
      (this.pending ??= new PendingFrames(this.historyFrames)).push(event, position);
    else raw.write(event);
    this.report();
  }

  bufferedAmount(): number {
    const { pending } = this;
    return this.raw.writableLength + (pending ? pending.bytes - pending.pacedBytes() : 0);
  }

  /** SendQueue: every byte queued, the events from history waiting in `pending` included. */
  queuedBytes(): number {
    return this.raw.writableLength + (this.pending?.bytes ?? 0);
  }

  /** Writes an SSE comment, so proxies see the stream alive; not while events wait (they are on their way). */
  keepAlive(): void {
    if (!this.raw.writableEnded && !this.pending) this.raw.write(': keep-alive\n\n');
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
   * The stream closed (either side): its bytes leave the send budget, what waits is dropped (a
   * subscribe waiting in `historyHandedOver` goes on, and finds the connection closed).
   */
  detach(): void {
    this.pending?.clear();
    this.pending = undefined;
    this.budget?.release(this);
  }

  close(code: number, reason: string): void {
    const { raw, pending } = this;
    // A slow consumer's backlog is dropped; any other close lets the events before it go first.
    if (!raw.writableEnded && code !== CloseCodes.slowConsumer) pending?.handOver((event) => raw.write(event));
    this.detach();
    if (raw.writableEnded) return;
    const errorCode = closeErrorCode(code, reason);
    if (errorCode === undefined) raw.end();
    else raw.end(`event: error\ndata: ${JSON.stringify({ op: 'error', code: errorCode, message: reason })}\n\n`);
  }

  /** Tells the budget what the stream holds; when the response is full, waits for its drain. */
  private report(): void {
    const { raw } = this;
    this.budget?.update(this);
    if (this.awaitingDrain || !raw.writableNeedDrain) return;
    this.awaitingDrain = true;
    raw.once('drain', () => this.drained());
  }

  /** Hands the waiting events over, in order, until the response is full again; then reports. */
  private drained(): void {
    const { raw, pending } = this;
    this.awaitingDrain = false;
    if (raw.writableEnded) return;
    if (pending && pending.handOver((event) => raw.write(event), raw) === 0) this.pending = undefined;
    this.report();
  }
}

/**
 * `GET /sse?channels=a,b[&access_token=][&subscription_token=]`: the SSE transport of the
 * connection lifecycle, with the same authentication and authorization as the WebSocket, answered
 * with an HTTP status before the stream starts; later errors are `error` events on the stream.
 * Recovery uses `Last-Event-ID` (or `?last_event_id=`).
 */
export function installSse(
  app: FastifyInstance,
  deps: LifecycleDeps & {
    readonly corsOrigins: AllowedOrigins;
    /** The gateway-wide bound on bytes queued for clients (send-budget.ts); none: unbounded. */
    readonly sendBudget?: SendBudget;
  },
): void {
  // A page of an origin outside CORS_ORIGINS is refused before the stream opens (403), as /ws is.
  const preValidation = refuseForeignOrigin(deps.corsOrigins);
  app.get('/sse', { schema: SseSchema, preValidation }, async (request: FastifyRequest, reply) => {
    if (deps.isDraining()) throw GatewayHttpErrors.draining.error('node is draining; reconnect');
    const query = request.query as Record<string, unknown>;
    const token = extractBearerToken(
      request.headers.authorization,
      typeof query.access_token === 'string' ? query.access_token : undefined,
    );
    const positions: Positions = {};
    const sink = new SseSink(reply.raw, positions, deps.sendBudget, deps.historyLimit);
    const lifecycle = new ConnectionLifecycle(deps, sink);
    sink.lifecycle = lifecycle;
    const claims = await lifecycle.authenticate(token);
    const channels = parseChannels(query.channels);
    const own = `user:${claims.sub}`;
    if (!channels.includes(own)) channels.unshift(own);
    if (channels.length > deps.limits.maxSubscriptions) {
      throw GatewayHttpErrors.tooManySubscriptions.error(`at most ${deps.limits.maxSubscriptions} channels`);
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
    const sinceOf = (channel: string): StreamPosition | undefined => {
      const prior = previous[channel];
      return prior ? { offset: prior[0], epoch: prior[1] } : undefined;
    };
    // Every id carries each resumed channel's position from the start: the channels are replayed one
    // after the other (session.ts), and a stream that drops before a channel's turn must leave it in
    // the last id the client got, at the position it resumed from, or the next stream would join it
    // without `since` and its missed events would be lost unsaid.
    for (const channel of channels) {
      const prior = previous[channel];
      if (prior) positions[channel] = prior;
    }

    reply.hijack();
    const raw = reply.raw;
    // What the hooks set on the reply (CORS) goes out with the stream's own headers.
    for (const [name, value] of Object.entries(reply.getHeaders())) if (value !== undefined) raw.setHeader(name, value);
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    raw.flushHeaders(); // the client sees the stream open while set-up runs
    const keepAlive = setInterval(() => {
      if (sink.bufferedAmount() > deps.limits.sendBufferBytes)
        lifecycle.close(CloseCodes.slowConsumer, 'slow consumer');
      else sink.keepAlive();
    }, deps.heartbeatMs);
    raw.on('close', () => {
      clearInterval(keepAlive);
      sink.detach();
      void lifecycle.release();
    });
    const session = await lifecycle.establish(claims, { since: sinceOf(own), announce: true });
    if (!session) return;
    for (const channel of channels) {
      if (channel === own) continue;
      if (lifecycle.isReleased) return;
      try {
        await session.subscribe(channel, sinceOf(channel), { id: undefined }, subscriptionToken);
      } catch (err) {
        // The stream has started: the error goes on it, as an `error` event naming the channel.
        session.replyError(undefined, err, channel);
      }
    }
  });
}
