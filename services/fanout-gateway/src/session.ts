import type { WebSocket } from 'ws';
import { authorizeChannel } from '@ripple/auth';
import type { AccessClaims } from '@ripple/auth';
import { RippleError, isRippleError } from '@ripple/errors';
import type { LocalHub, Subscriber } from './hub.js';
import { CloseCodes, parseClientFrame } from './protocol.js';
import type { ClientFrame } from './protocol.js';

export interface SessionLimits {
  readonly maxSubscriptions: number;
  readonly sendBufferBytes: number;
}

export interface SessionHooks {
  onError(code: string): void;
  onSlowConsumer(): void;
}

/** One authenticated WebSocket: validates every frame, keeps its subscriptions, bounds its buffer. */
export class Session implements Subscriber {
  private readonly channels = new Set<string>();
  private closed = false;

  constructor(
    readonly id: string,
    readonly user: AccessClaims,
    private readonly socket: WebSocket,
    private readonly hub: LocalHub,
    private readonly limits: SessionLimits,
    private readonly hooks: SessionHooks,
  ) {}

  send(frame: string): void {
    if (this.closed || this.socket.readyState !== this.socket.OPEN) return;
    if (this.socket.bufferedAmount > this.limits.sendBufferBytes) {
      this.hooks.onSlowConsumer();
      this.close(CloseCodes.slowConsumer, 'slow consumer');
      return;
    }
    this.socket.send(frame);
  }

  /** Joins a channel the user may read (the user's own channel is joined on connect). */
  join(channel: string): void {
    authorizeChannel(this.user.sub, channel);
    if (this.channels.has(channel)) return;
    if (this.channels.size >= this.limits.maxSubscriptions) {
      throw new RippleError('GW_TOO_MANY_SUBSCRIPTIONS', `at most ${this.limits.maxSubscriptions} subscriptions`, {
        status: 429,
      });
    }
    this.channels.add(channel);
    this.hub.subscribe(channel, this);
  }

  handleText(text: string): void {
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(text);
    } catch (err) {
      this.replyError(undefined, err);
      return;
    }
    try {
      this.dispatch(frame);
    } catch (err) {
      this.replyError(frame.id, err);
    }
  }

  private dispatch(frame: ClientFrame): void {
    switch (frame.op) {
      case 'subscribe':
        this.join(frame.channel);
        this.reply({ op: 'ack', id: frame.id, channel: frame.channel });
        return;
      case 'unsubscribe':
        if (this.channels.delete(frame.channel)) this.hub.unsubscribe(frame.channel, this);
        this.reply({ op: 'ack', id: frame.id, channel: frame.channel });
        return;
      case 'ping':
        this.reply({ op: 'pong', id: frame.id });
        return;
    }
  }

  reply(frame: Record<string, unknown>): void {
    this.send(JSON.stringify(frame));
  }

  private replyError(id: string | undefined, err: unknown): void {
    const code = isRippleError(err) ? err.code : 'GW_INTERNAL';
    const message = isRippleError(err) ? err.message : 'internal error';
    this.hooks.onError(code);
    this.reply({ op: 'error', id, code, message });
  }

  close(code: number, reason: string): void {
    this.release();
    this.socket.close(code, reason);
  }

  /** Forgets every subscription; safe to call more than once. */
  release(): void {
    if (this.closed) return;
    this.closed = true;
    for (const channel of this.channels) this.hub.unsubscribe(channel, this);
    this.channels.clear();
  }

  get subscriptionCount(): number {
    return this.channels.size;
  }
}
