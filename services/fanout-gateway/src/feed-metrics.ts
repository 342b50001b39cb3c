import { Counter, Gauge, Histogram } from '@ripple/telemetry';
import type { Registry } from '@ripple/telemetry';

export type FeedMetrics = ReturnType<typeof createFeedMetrics>;

/** The live feed's metrics (feed.ts); `creators` reads the number of creator channels held for feeds. */
export function createFeedMetrics(registry: Registry, creators: () => number) {
  return {
    deliveries: new Counter({
      name: 'gateway_feed_deliveries_total',
      help: 'Feed frames handed to feed subscriptions on this node (one per subscription and event)',
      registers: [registry],
    }),
    loadSeconds: new Histogram({
      name: 'gateway_feed_load_seconds',
      help: 'Joining a feed: loading the followee list from post-service and reading their channels, by result',
      labelNames: ['result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
    caughtUp: new Counter({
      name: 'gateway_feed_caught_up_total',
      help: 'Feed frames read from a creator history right after a follow: posts made after the follow but routed before its event',
      registers: [registry],
    }),
    gaps: new Counter({
      name: 'gateway_feed_gaps_total',
      help: 'Feed subscriptions restarted under a new epoch (a followed channel lost events): clients refetch',
      registers: [registry],
    }),
    creators: new Gauge({
      name: 'gateway_feed_creators',
      help: 'Creator channels this node reads for the feeds of its sockets (once per creator)',
      registers: [registry],
      collect() {
        this.set(creators());
      },
    }),
  };
}
