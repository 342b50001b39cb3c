import { authorizeChannel } from '@ripple/auth';
import type { AccessClaims, AccessVerifier, JwtSecret } from '@ripple/auth';
import { RippleError, isRippleError } from '@ripple/errors';
import type { StreamPosition } from '@ripple/registry';
import { unsubscribedFrame } from './membership.js';
import type { ChannelEnded, ConnectionSink, FramePosition } from './sink.js';
import { CloseCodes, MAX_REQUEST_ID_LENGTH, gapFrame, parseClientFrame } from './protocol.js';
import type { ClientFrame } from './protocol.js';
import { Subscriptions } from './subscriptions.js';
import { DeadlineQueue } from './timers.js';
import type { LongTimer } from './timers.js';
import type { ChannelSink, Register, SubscriptionDeps } from './subscriptions.js';
import type { ChannelFrame } from './hub.js';

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

/** What every session of a node shares (passed by reference, not copied per session). */
export interface SessionDeps extends SubscriptionDeps {
  /** Verifies chat subscription tokens (HS256, JWT_SECRET shared with chat-service). */
  readonly jwtSecret: JwtSecret;
  /** Verifies access tokens (HS256 or RS256, JWT_* configuration). */
  readonly verifyAccess: AccessVerifier;
  readonly limits: SessionLimits;
  readonly now?: () => number;
}

const ABUSE_WINDOW_MS = 10_000;

/** Where every session's frame queue starts: one settled promise shared, not one per session. */
const SETTLED: Promise<void> = Promise.resolve();

/**
 * One authenticated connection, whatever its transport: validates every frame, handles them one
 * at a time in arrival order, keeps its subscriptions, bounds its send buffer and its inbound
 * rate, and asks for a fresh token before the current one expires. Between `hold()` and `open()`
 * (set-up), outbound frames wait, so `welcome` is always the first frame.
 */
export class Session implements ChannelSink {
  readonly subscriptions: Subscriptions;
  private queue: Promise<void> = SETTLED;
  private closed = false;
  /** Closing with 4008 once the frames accepted before are answered: nothing more is accepted. */
  private abusive = false;
  private tokens: number;
  private lastRefill: number;
  /** When rate-limited frames came, within the abuse window (none until one is). */
  private violations: number[] | undefined;
  /** The one token timer: first the refresh notice, then the expiry. */
  private expiry: LongTimer | undefined;
  private noticeSent = false;
  private held: Array<[string, string, FramePosition | ChannelEnded | undefined]> | undefined;
  private released: Promise<void> | undefined;
  private readonly now: () => number;

  /**
   * `accessToken` is the token `user` came from; it is kept (and replaced on `refresh`) because
   * a `feed:` subscription loads the user's followees from post-service with it.
   */
  constructor(
    readonly id: string,
    public user: AccessClaims,
    private readonly sink: ConnectionSink,
    private readonly deps: SessionDeps,
    private readonly hooks: SessionHooks,
    private accessToken = '',
  ) {
    this.now = deps.now ?? Date.now;
    this.tokens = deps.limits.rateBurst;
    this.lastRefill = this.now();
    this.subscriptions = new Subscriptions(deps, this);
    this.armExpiry();
  }

  /** ChannelSink: a channel's event frame. */
  event(frame: ChannelFrame): void {
    this.send('event', frame.frame, frame);
  }

  /** ChannelSink: the access token `user` came from (a `feed:` subscription loads followees with it). */
  credential(): string {
    return this.accessToken;
  }

  /** ChannelSink: events before `position` are lost for `channel`. */
  gap(channel: string, position: StreamPosition): void {
    this.reply(gapFrame(channel, position), { channel, ...position });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Sends one frame (`text` is its JSON); `position` is where it leaves its channel. */
  send(op: string, text: string, position?: FramePosition | ChannelEnded): void {
    if (this.closed) return;
    if (this.held) {
      this.held.push([op, text, position]);
      return;
    }
    if (this.sink.bufferedAmount() > this.deps.limits.sendBufferBytes) {
      this.hooks.onSlowConsumer();
      this.close(CloseCodes.slowConsumer, 'slow consumer');
      return;
    }
    this.sink.send(op, text, position);
  }

  reply(frame: { op: string } & Record<string, unknown>, position?: FramePosition | ChannelEnded): void {
    this.send(frame.op, JSON.stringify(frame), position);
  }

  /** Holds outbound frames back until `open()` (connection set-up). */
  hold(): void {
    this.held ??= [];
  }

  /** Sends `welcome`, then whatever was held back during set-up. */
  open(welcome: { op: 'welcome' } & Record<string, unknown>): void {
    const held = this.held ?? [];
    this.held = undefined;
    this.reply(welcome);
    for (const [op, text, position] of held) this.send(op, text, position);
  }

  /** Accepts one inbound text frame; it is handled after the frames before it. */
  receive(text: string): void {
    if (this.closed || this.abusive) return;
    if (!this.takeToken(text)) return;
    this.queue = this.queue.then(() => this.handle(text));
  }

  /** Resolves when every frame received so far has been handled. */
  settled(): Promise<void> {
    return this.queue;
  }

  /** The user's own channel, joined on connect. */
  get ownChannel(): string {
    return `user:${this.user.sub}`;
  }

  /**
   * Joins the user's own channel (done on connect); `announce` acknowledges it like a subscribe;
   * `register` registers the node for it (see `Subscriptions.add`).
   */
  async joinOwnChannel(since?: StreamPosition, announce = false, register?: Register): Promise<void> {
    await this.subscribe(this.ownChannel, since, announce ? { id: undefined } : undefined, undefined, register);
  }

  /**
   * Subscribes to `channel` (authorized by `token` where it needs one), acknowledging with `ack`
   * (carrying `ack.id`) before any replayed event. With `since`, it first waits until the events
   * from history sent before (an earlier subscribe's replay) have been handed to the transport
   * (`ConnectionSink.historyHandedOver`): a connection fetches one replay at a time, so a resume
   * of many channels holds one replay's worth (the history limit) and finishes, however many
   * channels, paced by the client's reading. Frames are handled in order, so the connection's
   * next frames wait with it. Errors are the caller's to answer (GW_CONNECTION_CLOSED when the
   * connection ended meanwhile).
   */
  async subscribe(
    channel: string,
    since: StreamPosition | undefined,
    ack: { id: string | undefined } | undefined,
    token?: string,
    register?: Register,
  ): Promise<void> {
    if (since !== undefined) await this.sink.historyHandedOver();
    await authorizeChannel(this.deps.jwtSecret, this.user.sub, channel, token, this.deps.marks);
    if (!this.subscriptions.has(channel) && this.subscriptions.size >= this.deps.limits.maxSubscriptions) {
      throw new RippleError('GW_TOO_MANY_SUBSCRIPTIONS', `at most ${this.deps.limits.maxSubscriptions} subscriptions`);
    }
    // The ack goes out before the replayed events; `recovered` answers a `since`. Its position
    // is where the client stands once the replay is through.
    await this.subscriptions.add(
      channel,
      since,
      (s) => {
        if (!ack) return;
        const resume = since && s.recovered ? since.offset : s.position.offset;
        this.reply(
          {
            op: 'ack',
            id: ack.id,
            channel,
            offset: s.position.offset,
            epoch: s.position.epoch,
            ...(since && { recovered: s.recovered, replayed: s.replayed }),
          },
          { channel, offset: resume, epoch: s.position.epoch },
        );
      },
      register,
    );
  }

  /**
   * Ends the subscription to `channel` on the server's behalf (membership revoked) and tells the
   * client why with the `unsubscribed` frame. The channel stops receiving at once, before the
   * hub hands out its next frame; the directory is updated when the returned promise resolves.
   */
  async revoke(channel: string, code: string, message: string): Promise<void> {
    if (!this.subscriptions.has(channel)) return;
    const removed = this.subscriptions.remove(channel);
    this.reply(unsubscribedFrame(channel, code, message), { channel, ended: true });
    await removed;
  }

  /**
   * Answers a failed request with an `error` frame carrying its `id`, and `channel` when given (an
   * SSE stream's subscription has no request id: the channel names what failed).
   */
  replyError(id: string | undefined, err: unknown, channel?: string): void {
    const code = isRippleError(err) ? err.code : 'GW_INTERNAL';
    const message = isRippleError(err) ? err.message : 'internal error';
    this.hooks.onError(code);
    this.reply({
      op: 'error',
      ...(id !== undefined && { id }),
      ...(channel !== undefined && { channel }),
      code,
      message,
    });
  }

  private takeToken(text: string): boolean {
    const now = this.now();
    const { ratePerSecond, rateBurst, abuseLimit } = this.deps.limits;
    this.tokens = Math.min(rateBurst, this.tokens + ((now - this.lastRefill) / 1000) * ratePerSecond);
    this.lastRefill = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    this.violations = [...(this.violations ?? []).filter((t) => now - t < ABUSE_WINDOW_MS), now];
    // Answers keep the arrival order: frames accepted before are answered first.
    if (this.violations.length > abuseLimit) {
      this.abusive = true;
      this.queue = this.queue.then(() => {
        this.hooks.onError('GW_RATE_LIMITED');
        this.close(CloseCodes.rateLimited, 'rate limit exceeded');
      });
    } else {
      const id = requestIdOf(text);
      this.queue = this.queue.then(() =>
        this.replyError(id, new RippleError('GW_RATE_LIMITED', `more than ${ratePerSecond} messages per second`)),
      );
    }
    return false;
  }

  private async handle(text: string): Promise<void> {
    if (this.closed) return;
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(text);
    } catch (err) {
      this.replyError(requestIdOf(text), err);
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
      case 'subscribe':
        await this.subscribe(frame.channel, frame.since, { id: frame.id }, frame.token);
        return;
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
        this.accessToken = frame.token;
        this.armExpiry();
        this.reply({ op: 'ack', id: frame.id, expiresAt: claims.exp });
        return;
      }
    }
  }

  /**
   * Asks for a new token shortly before expiry; closes with 4001 if none came. One timer: it
   * fires at the notice, then is armed again for the expiry.
   */
  private armExpiry(): void {
    this.expiry?.cancel();
    this.expiry = undefined;
    this.noticeSent = false;
    const exp = this.user.exp;
    if (exp === undefined) return;
    const msLeft = exp * 1000 - this.now();
    this.expiry = expiryQueue(this.now).schedule(msLeft - this.deps.limits.refreshWindowMs, this);
  }

  /** The token timer fired: the notice first, then (armed again) the expiry. */
  expiryDue(): void {
    const exp = this.user.exp;
    if (this.closed || exp === undefined) return;
    if (!this.noticeSent) {
      this.noticeSent = true;
      this.reply({ op: 'refresh_required', expiresAt: exp });
      const msLeft = exp * 1000 - this.now();
      if (msLeft > 0) {
        this.expiry = expiryQueue(this.now).schedule(msLeft, this);
        return;
      }
    }
    this.hooks.onError('AUTH_TOKEN_EXPIRED');
    this.close(CloseCodes.unauthorized, 'AUTH_TOKEN_EXPIRED');
  }

  /** Closes the transport and releases the session. */
  close(code: number, reason: string): void {
    if (!this.closed) this.sink.close(code, reason);
    void this.release();
  }

  /**
   * Forgets every subscription and timer and refuses new subscriptions; safe to call more than
   * once (every call waits for the same release).
   */
  release(): Promise<void> {
    this.released ??= (async () => {
      this.closed = true;
      this.held = undefined;
      this.expiry?.cancel();
      await this.subscriptions.close().catch(() => undefined);
      this.hooks.onClosed(this);
    })();
    return this.released;
  }
}

function expiryDue(session: Session): void {
  session.expiryDue();
}

/**
 * The sessions' token timers: one queue (one Node timer) per clock, so every session of a node
 * shares one, instead of a Node timer each (tests that inject a clock get their own).
 */
const expiryQueues = new WeakMap<() => number, DeadlineQueue<Session>>();
function expiryQueue(now: () => number): DeadlineQueue<Session> {
  let queue = expiryQueues.get(now);
  if (!queue) {
    queue = new DeadlineQueue(expiryDue, now);
    expiryQueues.set(now, queue);
  }
  return queue;
}

/**
 * The `id` of a frame that failed validation, when it is an object with a string `id` the
 * protocol allows (an answer never echoes an id longer than MAX_REQUEST_ID_LENGTH).
 */
function requestIdOf(text: string): string | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
    const id = (value as { id?: unknown }).id;
    return typeof id === 'string' && id.length <= MAX_REQUEST_ID_LENGTH ? id : undefined;
  } catch {
    return undefined;
  }
}
