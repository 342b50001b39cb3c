import { channelsFor } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import type { Directory, History } from '@ripple/registry';
import type { NodeBus, NodeMessage } from './bus.js';
import type { ChannelFrame, LocalHub } from './hub.js';
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
  /** Runs before an event is routed (membership marks); a failure fails routing, so it is retried. */
  readonly beforeRoute?: (event: AnyEvent) => Promise<void>;
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
    await this.deps.beforeRoute?.(event);
    const json = JSON.stringify(event);
    const channels = channelsFor(event);
    // History first: the append gives each frame its offset, and a frame is only ever sent after
    // it is in history, so a node that misses it (or gets it late) can read it from there.
    const positions = await Promise.all(channels.map((channel) => history.append(channel, json)));
    const frames: ChannelFrame[] = channels.map((channel, i) => {
      const { offset, epoch } = positions[i] ?? { offset: '0', epoch: '' };
      return { channel, offset, epoch, frame: eventFrame(channel, offset, epoch, json) };
    });
    const { nodes, complete } = await directory.lookup(channels);
    this.deliver({ time: event.time, frames }, context.active());
    // The trace continues on the nodes that hold the other subscribers.
    const { traceparent } = traceHeaders();
    const message = (f: readonly ChannelFrame[]): NodeMessage => ({
      time: event.time,
      frames: f,
      ...(traceparent !== undefined && { traceparent }),
    });
    if (!complete) {
      // The registry lost entries recently (Redis restarted): every node gets every frame, and
      // each keeps what its sockets read. This node drops its own copy as already delivered.
      await this.deps.bus.broadcast(message(frames));
      metrics.nodeMessagesSent.inc();
      return;
    }
    const remote = new Map<string, ChannelFrame[]>();
    for (const frame of frames) {
      for (const node of nodes.get(frame.channel) ?? []) {
        if (node !== nodeId) remote.set(node, [...(remote.get(node) ?? []), frame]);
      }
    }
    await Promise.all([...remote].map(([node, f]) => this.deps.bus.send(node, message(f))));
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
    for (const f of message.frames) delivered += this.deps.hub.publish(f);
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
