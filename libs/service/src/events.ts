import type { FastifyRequest } from 'fastify';
import type { RawSql } from '@ripple/db';
import { createEvent, toOutboxMessage } from '@ripple/events';
import type { DataOf, EventOf, EventType } from '@ripple/events';
import { appendToOutbox } from '@ripple/outbox';

/** W3C trace context to store with an event, so its trace continues past Kafka. */
export interface TraceContext {
  readonly traceparent?: string;
  readonly tracestate?: string;
}

/** Creates an event (validated against the catalog) and writes it into the outbox of `tx`. */
export type Emit = <T extends EventType>(
  tx: RawSql,
  type: T,
  data: DataOf<T>,
  trace?: TraceContext,
) => Promise<EventOf<T>>;

export function outboxEmitter(source: string, now: () => Date = () => new Date()): Emit {
  return async (tx, type, data, trace = {}) => {
    const event = createEvent(type, { source, data, time: now() });
    await appendToOutbox(tx, toOutboxMessage(event, trace));
    return event;
  };
}

/** The trace context a request arrived with. */
export function traceOf(request: FastifyRequest): TraceContext {
  const { traceparent, tracestate } = request.headers;
  return {
    ...(typeof traceparent === 'string' && { traceparent }),
    ...(typeof tracestate === 'string' && { tracestate }),
  };
}
