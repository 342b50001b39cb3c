import { channelsFor } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import type { Directory, History } from '@ripple/registry';
import type { NodeBus, NodeMessage } from './bus.js';
import type { LocalHub } from './hub.js';
import type { GatewayMetrics } from './metrics.js';
import { eventFrame } from './protocol.js';
import { ROOT_CONTEXT, context, contextFromHeaders, traceHeaders, tracer } from '@ripple/telemetry';
import type { Context } from '@ripple/telemetry';

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
    const { history, directory, nodeId, metrics } = this.deps;
    const json = JSON.stringify(event);
    const remote = new Map<string, NodeMessage['frames'][number][]>();
    const local: NodeMessage['frames'][number][] = [];
    await Promise.all(
      channelsFor(event).map(async (channel) => {
        const position = await history.append(channel, json);
        const frame = {
          channel,
          offset: position.offset,
          frame: eventFrame(channel, position.offset, position.epoch, json),
        };
        local.push(frame);
        for (const node of await directory.nodesFor(channel)) {
          if (node === nodeId) continue;
          remote.set(node, [...(remote.get(node) ?? []), frame]);
        }
      }),
    );
    this.deliver({ time: event.time, frames: local }, context.active());
    // The trace continues on the nodes that hold the other subscribers.
    const { traceparent } = traceHeaders();
    await Promise.all(
      [...remote].map(([node, frames]) =>
        this.deps.bus.send(node, { time: event.time, frames, ...(traceparent !== undefined && { traceparent }) }),
      ),
    );
    metrics.nodeMessagesSent.inc(remote.size);
  }

  /** Delivers frames another node routed to this one. */
  receive(message: NodeMessage): void {
    this.deliver(message, contextFromHeaders({ traceparent: message.traceparent }, ROOT_CONTEXT));
  }

  /** Writes frames to this node's sockets: one `gateway.deliver` span per batch, with the socket count. */
  private deliver(message: NodeMessage, parent: Context): void {
    const span = tracer().startSpan('gateway.deliver', { attributes: { 'ripple.node_id': this.deps.nodeId } }, parent);
    let delivered = 0;
    for (const f of message.frames) delivered += this.deps.hub.publish(f.channel, f.offset, f.frame);
    span.setAttributes({ 'ripple.sockets': delivered, 'ripple.channels': message.frames.length });
    span.end();
    this.observe(delivered, message.time);
  }

  private observe(delivered: number, eventTime: string): void {
    if (delivered === 0) return;
    this.deps.metrics.deliveries.inc(delivered);
    this.deps.metrics.deliveryLatency.observe(Math.max(0, this.now() - Date.parse(eventTime)) / 1000);
  }
}
