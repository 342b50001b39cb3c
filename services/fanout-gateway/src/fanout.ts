import { channelsFor } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import type { LocalHub } from './hub.js';
import type { GatewayMetrics } from './metrics.js';
import { eventFrame } from './protocol.js';

/**
 * Delivers a consumed event to this node's sockets: the event is serialised once, and each
 * channel's frame once, however many sockets share it. Returns the number of frames written.
 */
export function createFanout(hub: LocalHub, metrics: GatewayMetrics, now: () => number = Date.now) {
  return (event: AnyEvent): number => {
    metrics.eventsConsumed.inc({ type: event.type });
    const channels = channelsFor(event).filter((c) => hub.hasSubscribers(c));
    if (channels.length === 0) return 0;
    const eventJson = JSON.stringify(event);
    let delivered = 0;
    for (const channel of channels) delivered += hub.publish(channel, eventFrame(channel, eventJson));
    metrics.deliveries.inc(delivered);
    metrics.deliveryLatency.observe(Math.max(0, now() - Date.parse(event.time)) / 1000);
    return delivered;
  };
}
