import { setTimeout as delay } from 'node:timers/promises';
import type { Redis } from 'ioredis';
import type { ChannelFrame } from './hub.js';

/** A channel frame on its way to sockets, with its event's `time` (for the delivery latency metric). */
export interface RoutedFrame extends ChannelFrame {
  readonly time: string;
}

/** One message from the node that routed a batch of events to a node that holds their subscribers. */
export interface NodeMessage {
  readonly frames: readonly RoutedFrame[];
  /** W3C trace context of the routing span, for the cross-node hop. */
  readonly traceparent?: string;
}

/** Node-to-node delivery: one message per node and routed batch, never one per socket or event. */
export interface NodeBus {
  /** Starts receiving this node's messages and the broadcasts. */
  start(onMessage: (message: NodeMessage) => void): Promise<void>;
  send(nodeId: string, message: NodeMessage): Promise<void>;
  /** Sends one message that every node receives (while the registry cannot say who needs it). */
  broadcast(message: NodeMessage): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisNodeBusOptions {
  readonly redis: Redis;
  readonly keyPrefix: string;
  readonly nodeId: string;
  /** A message from another node that could not be read. */
  readonly onBadMessage: (err: unknown) => void;
  /** Called with the Pub/Sub connection it creates, so its errors are watched like the others'. */
  readonly watch: (connection: Redis, name: string) => void;
  /** Fault injection: every message sent waits this long first (0: none). */
  readonly sendDelayMs?: number;
  /**
   * Called once the Pub/Sub connection is subscribed again after it was lost: messages sent to
   * this node meanwhile are gone, and only history has them (the hub's catch-up reads it).
   */
  readonly onResubscribed?: () => void;
}

/**
 * NodeBus on Redis Pub/Sub: each node listens on its own channel and on the broadcast channel.
 * Pub/Sub does not keep messages for a node that is reconnecting; the hub notices the missing
 * offsets with the next frame of the channel and reads them from history.
 */
export class RedisNodeBus implements NodeBus {
  private subscriber: Redis | undefined;
  /**
   * How this node's broadcasts start (`{"from":"<nodeId>",`): Pub/Sub hands a broadcast back to
   * its sender too, which drops it unread instead of parsing and delivering its own frames again.
   */
  private readonly ownBroadcast: string;
  constructor(private readonly opts: RedisNodeBusOptions) {
    this.ownBroadcast = `{"from":${JSON.stringify(opts.nodeId)},`;
  }

  private channelOf(nodeId: string): string {
    return `${this.opts.keyPrefix}node:${nodeId}`;
  }

  private broadcastChannel(): string {
    return `${this.opts.keyPrefix}nodes:all`;
  }

  async start(onMessage: (message: NodeMessage) => void): Promise<void> {
    const subscriber = this.opts.redis.duplicate();
    this.opts.watch(subscriber, 'redis-pubsub');
    this.subscriber = subscriber;
    subscriber.on('message', (_channel: string, text: string) => {
      if (text.startsWith(this.ownBroadcast)) return;
      try {
        onMessage(JSON.parse(text) as NodeMessage);
      } catch (err) {
        this.opts.onBadMessage(err);
      }
    });
    const channels = [this.channelOf(this.opts.nodeId), this.broadcastChannel()];
    await subscriber.subscribe(...channels);
    // On every later 'ready' the connection was lost: subscribe again (ioredis does too; this one
    // resolves once Redis confirmed) before telling anyone to read what was missed.
    subscriber.on('ready', () => {
      subscriber.subscribe(...channels).then(
        () => this.opts.onResubscribed?.(),
        (err: unknown) => this.opts.onBadMessage(err),
      );
    });
  }

  async send(nodeId: string, message: NodeMessage): Promise<void> {
    await this.publish(this.channelOf(nodeId), message);
  }

  /** The message carries `from` first: its sender recognises it without parsing (`ownBroadcast`). */
  async broadcast(message: NodeMessage): Promise<void> {
    await this.publish(this.broadcastChannel(), { from: this.opts.nodeId, ...message });
  }

  private async publish(channel: string, message: NodeMessage & { from?: string }): Promise<void> {
    if (this.opts.sendDelayMs) await delay(this.opts.sendDelayMs);
    await this.opts.redis.publish(channel, JSON.stringify(message));
  }

  async stop(): Promise<void> {
    if (this.subscriber) await this.subscriber.quit();
  }
}
