import { trace } from '@opentelemetry/api';
import { pino } from 'pino';
import type { Logger, LevelWithSilent } from 'pino';

export type { Logger };

/**
 * Structured JSON logs, one line per record, with the service name on every line and, inside a
 * traced operation, its `trace_id` and `span_id`.
 */
export function createLogger(service: string, level: LevelWithSilent = 'info'): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin() {
      const span = trace.getActiveSpan();
      if (!span) return {};
      const { traceId, spanId } = span.spanContext();
      return { trace_id: traceId, span_id: spanId };
    },
  });
}
