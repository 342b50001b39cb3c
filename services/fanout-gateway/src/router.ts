import { channelsFor } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import type { Directory, History } from '@ripple/registry';
import type { NodeBus, NodeMessage } from './bus.js';
import type { LocalHub } from './hub.js';
import type { GatewayMetrics } from './metrics.js';
import { eventFrame } from './protocol.js';

export interface RouterDeps {
  readonly nodeId: string;
  readonly hub: LocalHub;
  readonly history: History;
  readonly directory: Directory;
  readonly bus: NodeBus;
  readonly metrics: GatewayMetrics;
  readonly now?: () => number;
}

/**
 * Routes a consumed event: appends it to each channel's history (which gives its offset),
 * delivers to this node's sockets, and sends each other node that holds subscribers one message
 * with all of its frames. Resolves once that is done, so the Kafka offset is committed only after
 * routing succeeded. The event is serialised once, each channel's frame once.
 */
export class Router {
  private readonly now: () => number;
  constructor(private readonly deps: RouterDeps) {
    this.now = deps.now ?? Date.now;
  }

  async route(event: AnyEvent): Promise<void> {
    const { hub, history, directory, nodeId, metrics } = this.deps;
    metrics.eventsConsumed.inc({ type: event.type });
    const json = JSON.stringify(event);
    const remote = new Map<string, NodeMessage['frames'][number][]>();
    let delivered = 0;
    await Promise.all(
      channelsFor(event).map(async (channel) => {
        const position = await history.append(channel, json);
        const frame = eventFrame(channel, position.offset, position.epoch, json);
        delivered += hub.publish(channel, position.offset, frame);
        for (const node of await directory.nodesFor(channel)) {
          if (node === nodeId) continue;
          remote.set(node, [...(remote.get(node) ?? []), { channel, offset: position.offset, frame }]);
        }
      }),
    );
    await Promise.all([...remote].map(([node, frames]) => this.deps.bus.send(node, { time: event.time, frames })));
    metrics.nodeMessagesSent.inc(remote.size);
    this.observe(delivered, event.time);
  }

  /** Delivers frames another node routed to this one. */
  receive(message: NodeMessage): void {
    let delivered = 0;
    for (const f of message.frames) delivered += this.deps.hub.publish(f.channel, f.offset, f.frame);
    this.observe(delivered, message.time);
  }

  private observe(delivered: number, eventTime: string): void {
    if (delivered === 0) return;
    this.deps.metrics.deliveries.inc(delivered);
    this.deps.metrics.deliveryLatency.observe(Math.max(0, this.now() - Date.parse(eventTime)) / 1000);
  }
}
