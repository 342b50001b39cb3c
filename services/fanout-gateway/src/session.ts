import type { WebSocket } from 'ws';
import { authorizeChannel } from '@ripple/auth';
import type { AccessClaims, AccessVerifier, JwtSecret } from '@ripple/auth';
import { RippleError, isRippleError } from '@ripple/errors';
import { CloseCodes, gapFrame, parseClientFrame } from './protocol.js';
import type { ClientFrame } from './protocol.js';
import { Subscriptions } from './subscriptions.js';
import type { SubscriptionDeps } from './subscriptions.js';

export interface SessionLimits {
  readonly maxSubscriptions: number;
  readonly sendBufferBytes: number;
  /** Sustained inbound frames per second, and the burst allowed above it. */
  readonly ratePerSecond: number;
  readonly rateBurst: number;
  /** Rate-limited frames tolerated within `abuseWindowMs` before the socket is closed with 4008. */
  readonly abuseLimit: number;
  /** How long before the token expires the client is asked to refresh it. */
  readonly refreshWindowMs: number;
}

export interface SessionHooks {
  onError(code: string): void;
  onSlowConsumer(): void;
  /** Called once, after the session released its subscriptions. */
  onClosed(session: Session): void;
}

export interface SessionDeps extends SubscriptionDeps {
  /** Verifies chat subscription tokens (HS256, JWT_SECRET shared with chat-service). */
  readonly jwtSecret: JwtSecret;
  /** Verifies access tokens (HS256 or RS256, JWT_* configuration). */
  readonly verifyAccess: AccessVerifier;
  readonly limits: SessionLimits;
  readonly hooks: SessionHooks;
  readonly now?: () => number;
}

const ABUSE_WINDOW_MS = 10_000;

/**
 * One authenticated WebSocket: validates every frame, handles them one at a time in arrival
 * order, keeps its subscriptions, bounds its send buffer and its inbound rate, and asks for a
 * fresh token before the current one expires.
 */
export class Session {
  readonly subscriptions: Subscriptions;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  private tokens: number;
  private lastRefill: number;
  private violations: number[] = [];
  private expiryTimers: NodeJS.Timeout[] = [];
  private readonly now: () => number;

  constructor(
    readonly id: string,
    public user: AccessClaims,
    private readonly socket: WebSocket,
    private readonly deps: SessionDeps,
  ) {
    this.now = deps.now ?? Date.now;
    this.tokens = deps.limits.rateBurst;
    this.lastRefill = this.now();
    this.subscriptions = new Subscriptions(deps, {
      event: (f) => this.send(f.frame),
      gap: (channel, position) => this.reply(gapFrame(channel, position)),
    });
    this.armExpiry();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  send(frame: string): void {
    if (this.closed || this.socket.readyState !== this.socket.OPEN) return;
    if (this.socket.bufferedAmount > this.deps.limits.sendBufferBytes) {
      this.deps.hooks.onSlowConsumer();
      this.close(CloseCodes.slowConsumer, 'slow consumer');
      return;
    }
    this.socket.send(frame);
  }

  reply(frame: Record<string, unknown>): void {
    this.send(JSON.stringify(frame));
  }

  /** Accepts one inbound text frame; it is handled after the frames before it. */
  receive(text: string): void {
    if (this.closed) return;
    if (!this.takeToken()) return;
    this.queue = this.queue.then(() => this.handle(text));
  }

  /** Resolves when every frame received so far has been handled. */
  settled(): Promise<void> {
    return this.queue;
  }

  /** Joins the user's own channel (done on connect). */
  async joinOwnChannel(): Promise<void> {
    await this.subscriptions.add(`user:${this.user.sub}`, undefined);
  }

  private takeToken(): boolean {
    const now = this.now();
    const { ratePerSecond, rateBurst, abuseLimit } = this.deps.limits;
    this.tokens = Math.min(rateBurst, this.tokens + ((now - this.lastRefill) / 1000) * ratePerSecond);
    this.lastRefill = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.violations = [...this.violations.filter((t) => now - t < ABUSE_WINDOW_MS), now];
    if (this.violations.length > abuseLimit) {
      this.deps.hooks.onError('GW_RATE_LIMITED');
      this.close(CloseCodes.rateLimited, 'rate limit exceeded');
    } else {
      this.replyError(undefined, new RippleError('GW_RATE_LIMITED', `more than ${ratePerSecond} messages per second`));
    }
    return false;
  }

  private async handle(text: string): Promise<void> {
    if (this.closed) return;
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(text);
    } catch (err) {
      this.replyError(undefined, err);
      return;
    }
    try {
      await this.dispatch(frame);
    } catch (err) {
      this.replyError(frame.id, err);
    }
  }

  private async dispatch(frame: ClientFrame): Promise<void> {
    switch (frame.op) {
      case 'subscribe': {
        await authorizeChannel(this.deps.jwtSecret, this.user.sub, frame.channel, frame.token, this.deps.marks);
        if (!this.subscriptions.has(frame.channel) && this.subscriptions.size >= this.deps.limits.maxSubscriptions) {
          throw new RippleError(
            'GW_TOO_MANY_SUBSCRIPTIONS',
            `at most ${this.deps.limits.maxSubscriptions} subscriptions`,
          );
        }
        // The ack goes out before the replayed events; `recovered` answers a `since`.
        await this.subscriptions.add(frame.channel, frame.since, (s) => {
          this.reply({
            op: 'ack',
            id: frame.id,
            channel: frame.channel,
            offset: s.position.offset,
            epoch: s.position.epoch,
            ...(frame.since && { recovered: s.recovered, replayed: s.replayed }),
          });
        });
        if (this.closed) await this.subscriptions.remove(frame.channel);
        return;
      }
      case 'unsubscribe':
        await this.subscriptions.remove(frame.channel);
        this.reply({ op: 'ack', id: frame.id, channel: frame.channel });
        return;
      case 'ping':
        this.reply({ op: 'pong', id: frame.id });
        return;
      case 'refresh': {
        const claims = await this.deps.verifyAccess(frame.token);
        if (claims.sub !== this.user.sub) {
          throw new RippleError('AUTH_TOKEN_INVALID', 'a refreshed token must be for the same user');
        }
        this.user = claims;
        this.armExpiry();
        this.reply({ op: 'ack', id: frame.id, expiresAt: claims.exp });
        return;
      }
    }
  }

  private replyError(id: string | undefined, err: unknown): void {
    const code = isRippleError(err) ? err.code : 'GW_INTERNAL';
    const message = isRippleError(err) ? err.message : 'internal error';
    this.deps.hooks.onError(code);
    this.reply({ op: 'error', id, code, message });
  }

  /** Asks for a new token shortly before expiry; closes with 4001 if none came. */
  private armExpiry(): void {
    for (const t of this.expiryTimers) clearTimeout(t);
    this.expiryTimers = [];
    const exp = this.user.exp;
    if (exp === undefined) return;
    const msLeft = exp * 1000 - this.now();
    const notice = setTimeout(
      () => this.reply({ op: 'refresh_required', expiresAt: exp }),
      Math.max(0, msLeft - this.deps.limits.refreshWindowMs),
    );
    const expire = setTimeout(
      () => {
        this.deps.hooks.onError('AUTH_TOKEN_EXPIRED');
        this.close(CloseCodes.unauthorized, 'AUTH_TOKEN_EXPIRED');
      },
      Math.max(0, msLeft),
    );
    notice.unref();
    expire.unref();
    this.expiryTimers = [notice, expire];
  }

  close(code: number, reason: string): void {
    if (this.socket.readyState === this.socket.OPEN || this.socket.readyState === this.socket.CONNECTING) {
      this.socket.close(code, reason);
    }
    void this.release();
  }

  /** Forgets every subscription and timer; safe to call more than once. */
  async release(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.expiryTimers) clearTimeout(t);
    await this.subscriptions.removeAll().catch(() => undefined);
    this.deps.hooks.onClosed(this);
  }
}
