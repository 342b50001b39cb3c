import type { FastifyRequest } from 'fastify';
import type { RawSql } from '@ripple/db';
import { createEvent, toOutboxMessage } from '@ripple/events';
import type { DataOf, EventOf, EventType, OutboxMessage } from '@ripple/events';
import { appendToOutbox } from '@ripple/outbox';
import type { EventProducer } from '@ripple/kafka';
import { RippleError } from '@ripple/errors';
import { traceHeaders } from '@ripple/telemetry';

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

/**
 * The trace context to store with an event: the active span's when this process traces (so the
 * trace continues from inside the request), else what the request arrived with.
 */
function traceToStore(fallback: TraceContext): TraceContext {
  const active = traceHeaders();
  return active.traceparent === undefined ? fallback : active;
}

/**
 * Builds an event's outbox row without writing it, for a single statement that writes the state
 * and the row together (`Mutations.single`); `emit` is the same plus the INSERT.
 */
export type OutboxMessages = <T extends EventType>(
  type: T,
  data: DataOf<T>,
  trace?: TraceContext,
) => { event: EventOf<T>; message: OutboxMessage };

export function outboxMessages(source: string, now: () => Date = () => new Date()): OutboxMessages {
  return (type, data, trace = {}) => {
    const event = createEvent(type, { source, data, time: now() });
    return { event, message: toOutboxMessage(event, traceToStore(trace)) };
  };
}

export function outboxEmitter(source: string, now: () => Date = () => new Date()): Emit {
  return async (tx, type, data, trace = {}) => {
    const event = createEvent(type, { source, data, time: now() });
    await appendToOutbox(tx, toOutboxMessage(event, traceToStore(trace)));
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

/** Publishes an event straight to Kafka, for what is not state (typing indicators): no outbox row. */
export type Publish = <T extends EventType>(type: T, data: DataOf<T>, trace?: TraceContext) => Promise<EventOf<T>>;

export function directPublisher(source: string, producer: EventProducer, topicPrefix: string): Publish {
  return async (type, data, trace = {}) => {
    const event = createEvent(type, { source, data });
    const message = toOutboxMessage(event, traceToStore(trace));
    try {
      await producer.send([{ ...message, topic: topicPrefix + message.topic }]);
    } catch (err) {
      throw new RippleError('PUBLISH_FAILED', 'the event could not be published; retry', {
        status: 503,
        retriable: true,
        cause: err,
      });
    }
    return event;
  };
}
