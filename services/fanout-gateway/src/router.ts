import { channelsFor } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import { FencedAppendError } from '@ripple/registry';
import type { AppendFence, RouteLog, RoutedBatch } from '@ripple/registry';
import { fencedBatch } from '@ripple/kafka';
import type { EventConsumerOptions } from '@ripple/kafka';
import type { NodeBus, NodeMessage, RoutedFrame } from './bus.js';
import type { LocalHub } from './hub.js';
import type { GatewayMetrics } from './metrics.js';
import { eventFrame } from './protocol.js';
import { ROOT_CONTEXT, context, contextFromHeaders, trace, traceHeaders, tracer } from '@ripple/telemetry';
import type { Context, Span } from '@ripple/telemetry';

export interface RouterDeps {
  readonly nodeId: string;
  readonly hub: LocalHub;
  /** History appends and the channel-to-node lookup, one round trip per batch on Redis. */
  readonly routes: RouteLog;
  readonly bus: NodeBus;
  readonly metrics: GatewayMetrics;
  readonly now?: () => number;
  /**
   * Runs before a batch is routed, once per event in order (membership marks); a failure fails
   * routing, so it is retried. Not fenced: a stale owner of the partition runs it too, after the
   * new owner may have run it on the same and later events, so what it writes must come out the
   * same whatever the order and however often (as a departure mark, which keeps the latest).
   */
  readonly beforeRoute?: (event: AnyEvent) => Promise<void>;
  /**
   * Backpressure (`SendBudget.admit`): awaited before a routed batch is written to this node's
   * sockets, when it returns a promise; `keepAlive` is to be called while waiting. Never rejects.
   */
  readonly admit?: (keepAlive?: () => void) => Promise<void> | undefined;
  /**
   * With `admit`: a batch is written in slices of about this many bytes (frame bytes × sockets
   * written), asking `admit` again before each, so one large batch cannot queue much more than the
   * budget either (default: the whole batch at once).
   */
  readonly sliceBytes?: number;
  /**
   * A slice also ends once the frames written in it, each counted once, reach this many bytes: the
   * most one socket gets from one slice, so a burst to a few sockets is written as they drain too
   * instead of past their own send buffer in one pass (default: no bound).
   */
  readonly socketSliceBytes?: number;
  /**
   * Most bytes of frames received from other nodes that wait for their turn to be written (the
   * node bus cannot be held back as the Kafka consumer is). A message that would go past it while
   * others wait is dropped; its channels are read from history instead, in its turn (`recover`).
   * Default: no bound.
   */
  readonly receivedQueueBytes?: number;
  /**
   * Hands out what follows the last frame handed out of each of `channels` from history (the hub's
   * catch-up): for the frames of dropped messages, which no later frame may reveal. Rejects when
   * history could not be read (the caller retries later). Default: `hub.catchUp(channels)`.
   */
  readonly recover?: (channels: readonly string[]) => Promise<void>;
}

/**
 * The fence of a consumed event's history append: its Kafka partition (`<topic>/<partition>`) and
 * the fencing token of this node's assignment of it (`meta.fence`, from @ripple/kafka with
 * `fenceTokens`); undefined without a token.
 */
export function appendFence(meta: {
  readonly topic: string;
  readonly partition: number;
  readonly fence?: number;
}): AppendFence | undefined {
  return meta.fence === undefined ? undefined : { source: `${meta.topic}/${meta.partition}`, token: meta.fence };
}

/**
 * The @ripple/kafka consumer handlers that route what they are given with `router`, each batch
 * (one partition's) at once, fenced by the token of its assignment (`appendFence`).
 */
export function consumerHandlers(router: Router): Pick<EventConsumerOptions, 'onEvent' | 'onBatch'> {
  return {
    onEvent: (event, meta) => router.route([event], undefined, appendFence(meta)),
    onBatch: (items, control) =>
      router.route(
        items.map((i) => i.event),
        control,
        items[0] && appendFence(items[0].meta),
      ),
  };
}

/** What the caller of `route` lends it while the batch waits for sockets to drain. */
export interface RouteControl {
  /** Keeps the caller's Kafka group session alive (see @ripple/kafka `BatchControl`). */
  keepAlive(): void;
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
  /**
   * The local delivery of routed batches and received messages, one at a time in the order they
   * were routed or received, so a channel's frames reach the hub in that order.
   */
  private delivering: Promise<void> = Promise.resolve();
  /** Bytes of frames received from other nodes and not written yet (waiting for their turn or the budget). */
  private received = 0;
  /** Channels of dropped messages, to read from history in the turn that `recovering` holds. */
  private readonly owed = new Set<string>();
  private recovering = false;
  constructor(private readonly deps: RouterDeps) {
    this.now = deps.now ?? Date.now;
  }

  /**
   * Routes `events` in order. Rejects when the registry or the bus fails (the batch is retried).
   * With `fence` (the batch's Kafka partition and the fencing token of this node's assignment of
   * it), the history append is refused on any channel that a later owner of the partition already
   * appended to: then nothing of the batch is delivered or sent, and it rejects with
   * `fencedBatch` (@ripple/kafka), counted in `gateway_fenced_batches_total` and recorded as a
   * `gateway.route.fenced` event on the active span.
   * Once the frames are in history, the messages to other nodes leave, and the local delivery
   * waits for `admit` (sockets holding too much): that wait overlaps the history round trip of the
   * batches behind it, and its time is a `gateway.send_budget.wait` event on the active span.
   */
  async route(events: readonly AnyEvent[], control?: RouteControl, fence?: AppendFence): Promise<void> {
    const { nodeId, metrics } = this.deps;
    // Membership marks first, in event order: a failure fails the batch, so it is retried. They
    // are not fenced: a stale owner's marks, written before its append is refused, are marks the
    // new owner writes too, and a mark only moves to a later departure (Departures.markLeft).
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
    // A stale owner (paused past its group session, or slow while its partition moved on) must
    // not append what the later owner already gave offsets: past the dedupe window it would get
    // new ones and reach clients twice. The channel's append script refuses its lower token.
    const { positions, nodes, complete } = await this.appended(items, fence);
    const frames: RoutedFrame[] = items.map(({ channel, payload, time }, i) => {
      const { offset, epoch } = positions[i] ?? { offset: '0', epoch: '' };
      return { channel, offset, epoch, time, frame: eventFrame(channel, offset, epoch, payload) };
    });
    const active = context.active();
    // The trace continues on the nodes that hold the other subscribers; they do not wait for this
    // node's sockets.
    const { traceparent } = traceHeaders();
    const message = (f: readonly RoutedFrame[]): NodeMessage => ({
      frames: f,
      ...(traceparent !== undefined && { traceparent }),
    });
    let sent: Promise<unknown>;
    if (!complete) {
      // The registry lost entries recently (Redis restarted): every node gets every frame, and
      // each keeps what its sockets read. The bus does not hand this node its own copy.
      sent = this.deps.bus.broadcast(message(frames)).then(() => metrics.nodeMessagesSent.inc());
    } else {
      const remote = new Map<string, RoutedFrame[]>();
      for (const frame of frames) {
        for (const node of nodes.get(frame.channel) ?? []) {
          if (node === nodeId) continue;
          const list = remote.get(node);
          if (list) list.push(frame);
          else remote.set(node, [frame]);
        }
      }
      sent = Promise.all([...remote].map(([node, f]) => this.deps.bus.send(node, message(f)))).then(() =>
        metrics.nodeMessagesSent.inc(remote.size),
      );
    }
    // Handled at once: a send that fails while the delivery waits must not count as unhandled.
    const sending = sent.then(
      () => undefined,
      (err: unknown) => ({ err }),
    );
    const span = trace.getActiveSpan();
    await this.take(() => this.deliverPaced(frames, active, span, control));
    const failed = await sending;
    if (failed) throw failed.err;
  }

  /** Bytes of frames received from other nodes and not written yet: waiting for their turn or the budget (≥ 0). */
  get receivedQueueBytes(): number {
    return this.received;
  }

  /** Runs `deliver` in the next turn of `delivering`; resolves or rejects as it does. */
  private take(deliver: () => Promise<void>): Promise<void> {
    const turn = this.delivering.then(deliver);
    this.delivering = turn.catch(() => undefined);
    return turn;
  }

  /** `routes.appendAndLookup`, turning a fenced append into `fencedBatch` (counted, on the span). */
  private async appended(items: Parameters<RouteLog['appendAndLookup']>[0], fence?: AppendFence): Promise<RoutedBatch> {
    try {
      return await this.deps.routes.appendAndLookup(items, fence);
    } catch (err) {
      if (!(err instanceof FencedAppendError)) throw err;
      this.deps.metrics.fencedBatches.inc();
      trace.getActiveSpan()?.addEvent('gateway.route.fenced', {
        'ripple.fence.source': err.fence.source,
        'ripple.fence.token': err.fence.token,
        'ripple.channels': err.channels.length,
      });
      throw fencedBatch(err.message, err);
    }
  }

  /**
   * Writes `frames` to this node's sockets in slices of about `sliceBytes` (and `socketSliceBytes`),
   * waiting for the send budget before each slice; batches and received messages take turns
   * (`delivering`). A wait is a `gateway.send_budget.wait` event on `span`. Never rejects.
   */
  private async deliverPaced(
    frames: readonly RoutedFrame[],
    parent: Context,
    span: Span | undefined,
    control?: RouteControl,
  ): Promise<void> {
    let from = 0;
    while (from < frames.length) {
      // Between slices the event loop runs (sockets drain, timers fire): not only microtasks.
      if (from > 0) await new Promise((resolve) => setImmediate(resolve));
      await this.admitted(span, control);
      from = this.deliver(frames, parent, from);
    }
  }

  /** Waits for the send budget when it is full; records the wait on `span`. */
  private async admitted(span: Span | undefined, control?: RouteControl): Promise<void> {
    const waiting = this.deps.admit?.(control && (() => control.keepAlive()));
    if (!waiting) return;
    const started = this.now();
    await waiting;
    span?.addEvent('gateway.send_budget.wait', { 'ripple.wait_ms': this.now() - started });
  }

  /**
   * Delivers frames another node routed to this one, in turn with this node's own batches and
   * under the same send budget and slicing. The frames are in history already: when the frames
   * waiting for their turn would go past `receivedQueueBytes`, the message is dropped
   * (`gateway_node_messages_dropped_total`) and its channels are caught up from history in its
   * turn instead (`recover`), as after a lost node-bus connection. A `gateway.receive` span (its
   * parent the routing span, from `traceparent`) has a `gateway.node_message.wait` event when the
   * message waited for its turn, and a `gateway.send_budget.wait` event per wait for the budget.
   * Resolves once the message was written or dropped (and its recovery, if any, tried); never rejects.
   */
  receive(message: NodeMessage): Promise<void> {
    const { frames } = message;
    const parent = contextFromHeaders({ traceparent: message.traceparent }, ROOT_CONTEXT);
    const span = tracer().startSpan(
      'gateway.receive',
      { attributes: { 'ripple.node_id': this.deps.nodeId, 'ripple.frames': frames.length } },
      parent,
    );
    const bytes = frames.reduce((sum, f) => sum + f.frame.length, 0);
    if (this.received > 0 && this.received + bytes > (this.deps.receivedQueueBytes ?? Infinity)) {
      span.addEvent('gateway.node_message.dropped', { 'ripple.queued_bytes': this.received });
      span.end();
      return this.drop(frames);
    }
    this.received += bytes;
    const queuedAt = this.now();
    return this.take(async () => {
      const waitedMs = this.now() - queuedAt;
      if (waitedMs > 0) span.addEvent('gateway.node_message.wait', { 'ripple.wait_ms': waitedMs });
      await this.deliverPaced(frames, trace.setSpan(parent, span), span);
      this.received -= bytes;
      span.end();
    });
  }

  /** Drops received frames: their channels are read from history in one later turn. */
  private drop(frames: readonly RoutedFrame[]): Promise<void> {
    this.deps.metrics.nodeMessagesDropped.inc();
    for (const f of frames) this.owed.add(f.channel);
    if (this.recovering) return this.delivering;
    this.recovering = true;
    const recover = this.deps.recover ?? ((channels) => this.deps.hub.catchUp(channels).then(() => undefined));
    return this.take(async () => {
      await this.admitted(undefined);
      const channels = [...this.owed];
      this.owed.clear();
      this.recovering = false;
      await recover(channels).catch(() => undefined); // a caller's `recover` reports and retries itself
    });
  }

  /**
   * Writes frames from index `from` to this node's sockets until about `sliceBytes` (frame bytes ×
   * sockets) or `socketSliceBytes` (frame bytes) were written; returns the index after the last one
   * written. One `gateway.deliver` span per call, with the socket count.
   */
  private deliver(frames: readonly RoutedFrame[], parent: Context, from: number): number {
    const span = tracer().startSpan('gateway.deliver', { attributes: { 'ripple.node_id': this.deps.nodeId } }, parent);
    const sliceBytes = this.deps.sliceBytes ?? Infinity;
    const socketSliceBytes = this.deps.socketSliceBytes ?? Infinity;
    let delivered = 0;
    let bytes = 0;
    let frameBytes = 0;
    const now = this.now();
    let i = from;
    while (i < frames.length && bytes < sliceBytes && frameBytes < socketSliceBytes) {
      const f = frames[i++] as RoutedFrame;
      const sockets = this.deps.hub.publish(f);
      if (sockets === 0) continue;
      delivered += sockets;
      bytes += sockets * f.frame.length;
      frameBytes += f.frame.length;
      this.deps.metrics.deliveryLatency.observe(Math.max(0, now - Date.parse(f.time)) / 1000);
    }
    span.setAttributes({ 'ripple.sockets': delivered, 'ripple.channels': i - from });
    span.end();
    this.deps.metrics.deliveries.inc(delivered);
    return i;
  }
}
