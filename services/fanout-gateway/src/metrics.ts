import { Counter, Gauge, Histogram } from '@ripple/telemetry';
import type { Registry } from '@ripple/telemetry';
export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;

export function createGatewayMetrics(
  registry: Registry,
  subscriptions: () => number,
  connections: () => number,
  sendQueuedBytes: () => number = () => 0,
  receivedQueuedBytes: () => number = () => 0,
) {
  // Gauges read live state when scraped.
  return {
    connections: new Gauge({
      name: 'gateway_connections',
      help: 'Open, authenticated WebSocket connections on this node',
      registers: [registry],
      collect() {
        this.set(connections());
      },
    }),
    subscriptions: new Gauge({
      name: 'gateway_subscriptions',
      help: 'Channel subscriptions held by sockets on this node',
      registers: [registry],
      collect() {
        this.set(subscriptions());
      },
    }),
    sendQueued: new Gauge({
      name: 'gateway_send_queued_bytes',
      help: 'Bytes queued for WebSocket and SSE clients and not yet taken by the kernel, as last counted (the send budget, WS_SEND_BUDGET_BYTES); a frame shared by many sockets counts once per socket',
      registers: [registry],
      collect() {
        this.set(sendQueuedBytes());
      },
    }),
    receivedQueued: new Gauge({
      name: 'gateway_node_bus_queued_bytes',
      help: 'Bytes of frames received from other gateway nodes and waiting for their turn to be written to sockets (behind the send budget; bounded by NODE_BUS_QUEUE_BYTES, or by one message alone when it is larger)',
      registers: [registry],
      collect() {
        this.set(receivedQueuedBytes());
      },
    }),
    registryLatency: new Histogram({
      name: 'registry_operation_duration_seconds',
      help: 'Redis registry and history operations, by operation',
      labelNames: ['operation'],
      // Up to 10 s: under a reconnect storm on a loaded host a connect's registry call took over 1 s.
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    connectionSetup: new Histogram({
      name: 'gateway_connection_setup_seconds',
      help: 'Connection set-up on this node, by phase: request (TCP connection accepted by the event loop -> its upgrade request handled: HTTP parsing and event-loop lag), verify (access token), register (registry, presence and own channel), total (accepted -> welcome written, with the 101)',
      labelNames: ['phase'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    nodeMessagesSent: new Counter({
      name: 'gateway_node_messages_sent_total',
      help: 'Messages sent to other gateway nodes (one per node and event)',
      registers: [registry],
    }),
    nodeMessagesDropped: new Counter({
      name: 'gateway_node_messages_dropped_total',
      help: 'Messages from other gateway nodes dropped because the frames waiting for their turn were over NODE_BUS_QUEUE_BYTES; their channels are read from history instead (a catch-up)',
      registers: [registry],
    }),
    fencedBatches: new Counter({
      name: 'gateway_fenced_batches_total',
      help: 'Consumed batches whose history append was refused because a later owner of their Kafka partition appended to one of their channels (a stale owner: nothing of the batch delivered, sent or committed)',
      registers: [registry],
    }),
    presenceChanges: new Counter({
      name: 'gateway_presence_changes_total',
      help: 'Users coming online or going offline, by change',
      labelNames: ['change'],
      registers: [registry],
    }),
    deliveries: new Counter({
      name: 'gateway_deliveries_total',
      help: 'Event frames written to sockets',
      registers: [registry],
    }),
    deliveryLatency: new Histogram({
      name: 'gateway_delivery_latency_seconds',
      help: 'From the event time to the socket write',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    gaps: new Counter({
      name: 'gateway_channel_gaps_total',
      help: 'Missing offsets seen in a channel on this node: filled from history, or lost and signalled to clients (gap frame)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    catchUps: new Counter({
      name: 'gateway_catch_ups_total',
      help: 'Reads of held channels from history after this node may have missed frames: every channel when its registry lease lapsed (lease) or its node-bus connection was lost (bus); the channels of messages from other nodes it dropped (dropped, NODE_BUS_QUEUE_BYTES)',
      labelNames: ['reason'],
      registers: [registry],
    }),
    reinstatements: new Counter({
      name: 'gateway_reinstatements_total',
      help: 'Times a peer claimed this node as dead while it was alive (it stalled past its registry lease and the grace), and it registered its connections and their presence again',
      registers: [registry],
    }),
    slowConsumerCloses: new Counter({
      name: 'gateway_slow_consumer_closes_total',
      help: 'Sockets closed with 4009 because their send buffer overflowed (WS_SEND_BUFFER_BYTES) or the gateway-wide send budget stayed full (WS_SEND_BUDGET_BYTES)',
      registers: [registry],
    }),
    sendBudgetWait: new Histogram({
      name: 'gateway_send_budget_wait_seconds',
      help: 'Time a slice of a routed batch or of a message from another node waited before being written to sockets, because the bytes queued for all sockets were over WS_SEND_BUDGET_BYTES (backpressure on the Kafka consumer); slices that did not wait are not observed',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    sendBudgetCloses: new Counter({
      name: 'gateway_send_budget_closes_total',
      help: 'Sockets closed with 4009 (slow consumer) because the bytes queued for all sockets stayed over WS_SEND_BUDGET_BYTES for WS_SEND_BUDGET_STALL_MS (largest queues first); also counted in gateway_slow_consumer_closes_total',
      registers: [registry],
    }),
    heartbeatTerminations: new Counter({
      name: 'gateway_heartbeat_terminations_total',
      help: 'Sockets terminated because the peer stayed silent (no pong, no frame) for two ping intervals',
      registers: [registry],
    }),
    errors: new Counter({
      name: 'gateway_errors_total',
      help: 'Protocol and authorization errors sent to clients or closes, by code',
      labelNames: ['code'],
      registers: [registry],
    }),
  };
}

/**
 * Wraps every method of `target` (the registry directory, the history) so each call is timed in
 * `registry_operation_duration_seconds{operation="<component>.<method>"}`.
 */
export function timed<T extends object>(target: T, component: string, metrics: GatewayMetrics): T {
  return new Proxy(target, {
    get(object, property, receiver) {
      const value: unknown = Reflect.get(object, property, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const end = metrics.registryLatency.startTimer({ operation: `${component}.${String(property)}` });
        const result: unknown = (value as (...a: unknown[]) => unknown).apply(object, args);
        if (result instanceof Promise) return result.finally(end);
        end();
        return result;
      };
    },
  });
}
