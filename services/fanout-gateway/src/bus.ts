import type { Redis } from 'ioredis';

/** One message from the node that consumed an event to a node that holds its subscribers. */
export interface NodeMessage {
  /** The event's `time`, for the delivery latency metric. */
  readonly time: string;
  readonly frames: readonly { channel: string; offset: string; frame: string }[];
  /** W3C trace context of the routing span, for the cross-node hop. */
  readonly traceparent?: string;
}

/** Node-to-node delivery: one message per node and event, never one per socket. */
export interface NodeBus {
  /** Starts receiving this node's messages. */
  start(onMessage: (message: NodeMessage) => void): Promise<void>;
  send(nodeId: string, message: NodeMessage): Promise<void>;
  stop(): Promise<void>;
}

/** NodeBus on Redis Pub/Sub: each node listens on its own channel. */
export class RedisNodeBus implements NodeBus {
  private subscriber: Redis | undefined;
  constructor(
    private readonly redis: Redis,
    private readonly keyPrefix: string,
    private readonly nodeId: string,
    private readonly onError: (err: unknown) => void,
  ) {}

  private channelOf(nodeId: string): string {
    return `${this.keyPrefix}node:${nodeId}`;
  }

  async start(onMessage: (message: NodeMessage) => void): Promise<void> {
    const subscriber = this.redis.duplicate();
    this.subscriber = subscriber;
    subscriber.on('message', (_channel: string, text: string) => {
      try {
        onMessage(JSON.parse(text) as NodeMessage);
      } catch (err) {
        this.onError(err);
      }
    });
    await subscriber.subscribe(this.channelOf(this.nodeId));
  }

  async send(nodeId: string, message: NodeMessage): Promise<void> {
    await this.redis.publish(this.channelOf(nodeId), JSON.stringify(message));
  }

  async stop(): Promise<void> {
    if (this.subscriber) await this.subscriber.quit();
  }
}
