export { createLogger } from './logger.js';
export { settleLogWrites } from './stdout.js';
export type { Logger } from './logger.js';
export { Counter, Gauge, Histogram, Registry, createMetricsRegistry } from './metrics.js';
export {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  contextFromHeaders,
  headerValue,
  shutdownTracing,
  startTracing,
  trace,
  traceHeaders,
  tracer,
} from './tracing.js';
export type { Context, Instrumentation, InstrumentationLoader, MessageHeaders, Span } from './tracing.js';
export { REDACTED, redactText, redactUrl } from './redact.js';
export { connectionHealth, watchConnection } from './connections.js';
export type { ConnectionHealth, ConnectionHealthOptions } from './connections.js';
