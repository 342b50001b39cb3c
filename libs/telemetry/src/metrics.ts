import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { registerDroppedLogLines } from './stdout.js';

export { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Prometheus reserves `_total` for counters (`promtool check metrics` refuses a gauge named so),
 * yet prom-client's default metrics include three such gauges (`nodejs_active_handles_total`,
 * `nodejs_active_requests_total`, `nodejs_active_resources_total`). Each only sums a gauge that
 * is kept, by type (`sum(nodejs_active_handles)` is the same number), so they are dropped.
 * Our own metrics are held to the same rule by a test that runs promtool on every process.
 */
function dropTotalGauges(registry: Registry): void {
  for (const metric of registry.getMetricsAsArray()) {
    const { name } = metric as unknown as { name: string };
    if (metric instanceof Gauge && name.endsWith('_total')) registry.removeSingleMetric(name);
  }
}

/**
 * One Prometheus registry per process, with Node's default metrics (less the gauges named like
 * counters, see `dropTotalGauges`), the process's `log_lines_dropped_total` (see
 * `stdoutDestination`) and a `service` label.
 */
export function createMetricsRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  dropTotalGauges(registry);
  registerDroppedLogLines(registry);
  return registry;
}
