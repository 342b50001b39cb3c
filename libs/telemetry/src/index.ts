export { createLogger } from './logger.js';
export type { Logger } from './logger.js';
export { Counter, Gauge, Histogram, Registry, createMetricsRegistry } from './metrics.js';
