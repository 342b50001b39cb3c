import { channelsFor } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import type { RouteLog } from '@ripple/registry';
import type { NodeBus, NodeMessage, RoutedFrame } from './bus.js';
import type { LocalHub } from './hub.js';
import type { GatewayMetrics } from './metrics.js';
import { eventFrame } from './protocol.js';
import { ROOT_CONTEXT, context, contextFromHeaders, traceHeaders, tracer } from '@ripple/telemetry';
import type { Context } from '@ripple/telemetry';

export interface RouterDeps {
  readonly nodeId: string;
  readonly hub: LocalHub;
  /** History appends and the channel-to-node lookup, one round trip per batch on Redis. */
  readonly routes: RouteLog;
  readonly bus: NodeBus;
  readonly metrics: GatewayMetrics;
  readonly now?: () => number;
  /** Runs before a batch is routed, once per event in order (membership marks); a failure fails routing, so it is retried. */
  readonly beforeRoute?: (event: AnyEvent) => Promise<void>;
}

/**
 * Routes consumed events, a batch at a time: appends every (event, channel) frame to its channel's
 * history and reads the nodes holding each channel in one step (`RouteLog`: one round trip; the
 * append gives each frame its offset, in event order), delivers to this node's sockets, and sends
 * each other node that holds subscribers one message with all of its frames. Resolves once that
 * is done, so the Kafka offsets are committed only after routing succeeded. Each event is
 * serialised once (`JSON.stringify` of the validated event, never the Kafka value's own text,
 * which may say more than was validated), each channel's frame once.
 */
export class Router {
  private readonly now: () => number;
  constructor(private readonly deps: RouterDeps) {
    this.now = deps.now ?? Date.now;
  }

  /** Routes `events` in order. Rejects when the registry or the bus fails (the batch is retried). */
  async route(events: readonly AnyEvent[]): Promise<void> {
    const { routes, nodeId, metrics } = this.deps;
    // Membership marks first, in event order: a failure fails the batch, so it is retried.
    if (this.deps.beforeRoute) for (const event of events) await this.deps.beforeRoute(event);
    // Each item is also the HistoryAppend of its frame (channel, payload, id): one object per frame.
    const items = events.flatMap((event) => {
      const payload = JSON.stringify(event);
      return channelsFor(event).map((channel) => ({ channel, payload, id: event.id, time: event.time }));
    });
    if (items.length === 0) return;
    // History first: the append gives each frame its offset, and a frame is only ever sent after
    // it is in history, so a node that misses it (or gets it late) can read it from there. Each
    // channel's nodes are read after its append, so a node that registers later reads a position
    // that includes the frame. An event routed again (this node took over a partition whose
    // last batches the previous owner routed but did not commit) keeps its first offset, so the
    // hub and every connection drop it as already handed out, instead of a duplicate at a new one.
    const { positions, nodes, complete } = await routes.appendAndLookup(items);
    const frames: RoutedFrame[] = items.map(({ channel, payload, time }, i) => {
      const { offset, epoch } = positions[i] ?? { offset: '0', epoch: '' };
      return { channel, offset, epoch, time, frame: eventFrame(channel, offset, epoch, payload) };
    });
    this.deliver(frames, context.active());
    // The trace continues on the nodes that hold the other subscribers.
    const { traceparent } = traceHeaders();
    const message = (f: readonly RoutedFrame[]): NodeMessage => ({
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
    const remote = new Map<string, RoutedFrame[]>();
    for (const frame of frames) {
      for (const node of nodes.get(frame.channel) ?? []) {
        if (node === nodeId) continue;
        const list = remote.get(node);
        if (list) list.push(frame);
        else remote.set(node, [frame]);
      }
    }
    await Promise.all([...remote].map(([node, f]) => this.deps.bus.send(node, message(f))));
    metrics.nodeMessagesSent.inc(remote.size);
  }

  /** Delivers frames another node routed to this one. */
  receive(message: NodeMessage): void {
    this.deliver(message.frames, contextFromHeaders({ traceparent: message.traceparent }, ROOT_CONTEXT));
  }

  /** Writes frames to this node's sockets: one `gateway.deliver` span per batch, with the socket count. */
  private deliver(frames: readonly RoutedFrame[], parent: Context): void {
    const span = tracer().startSpan('gateway.deliver', { attributes: { 'ripple.node_id': this.deps.nodeId } }, parent);
    let delivered = 0;
    const now = this.now();
    for (const f of frames) {
      const sockets = this.deps.hub.publish(f);
      if (sockets === 0) continue;
      delivered += sockets;
      this.deps.metrics.deliveryLatency.observe(Math.max(0, now - Date.parse(f.time)) / 1000);
    }
    span.setAttributes({ 'ripple.sockets': delivered, 'ripple.channels': frames.length });
    span.end();
    this.deps.metrics.deliveries.inc(delivered);
  }
}
