import { Counter, Gauge, Histogram } from '@ripple/telemetry';
import type { Registry } from '@ripple/telemetry';
import type { LocalHub } from './hub.js';

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;

export function createGatewayMetrics(registry: Registry, hub: LocalHub, connections: () => number) {
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
        this.set(hub.subscriptionCount);
      },
    }),
    eventsConsumed: new Counter({
      name: 'gateway_events_consumed_total',
      help: 'Events consumed from Kafka, by type',
      labelNames: ['type'],
      registers: [registry],
    }),
    nodeMessagesSent: new Counter({
      name: 'gateway_node_messages_sent_total',
      help: 'Messages sent to other gateway nodes (one per node and event)',
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
    slowConsumerCloses: new Counter({
      name: 'gateway_slow_consumer_closes_total',
      help: 'Sockets closed with 4009 because their send buffer overflowed',
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
