import { AsyncLocalStorage } from 'node:async_hooks';
import type { FastifyRequest } from 'fastify';
import type { RawSql } from '@ripple/db';
import { createEvent, toOutboxMessage } from '@ripple/events';
import type { DataOf, EventOf, EventType, OutboxMessage } from '@ripple/events';
import { appendToOutbox } from '@ripple/outbox';
import type { Mutations } from '@ripple/http';
import type { EventProducer } from '@ripple/kafka';
import { RippleError } from '@ripple/errors';
import { traceHeaders } from '@ripple/telemetry';

/** W3C trace context to store with an event, so its trace continues past Kafka. */
export interface TraceContext {
  readonly traceparent?: string;
  readonly tracestate?: string;
}

/** The ids of the events made (`emit`, `outboxMessage`) by the unit of work in progress. */
const written = new AsyncLocalStorage<string[]>();

/**
 * Runs `work` as one unit of work (a request's mutation, a consumed event's handling): the ids of
 * the events that `emit` and `outboxMessage` make within it, in order, are what `eventsWritten()`
 * returns inside it, so the code that commits them can hand them to the outbox
 * (`OutboxService.wake(eventIds)`, which stamps the commit → ack measurement).
 */
export function recordingEvents<T>(work: () => Promise<T>): Promise<T> {
  return written.run([], work);
}

/** The CloudEvents ids of the events made so far in this unit of work (`recordingEvents`); none outside one. */
export function eventsWritten(): readonly string[] {
  return written.getStore() ?? [];
}

/** `mutations` whose every run is a unit of work (`recordingEvents`): its `afterCommit` sees `eventsWritten()`. */
export function recordingMutations<Tx extends RawSql>(base: Mutations<Tx>): Mutations<Tx> {
  return {
    run: (request, reply, status, work) => recordingEvents(() => base.run(request, reply, status, work)),
    single: (request, reply, status, work) => recordingEvents(() => base.single(request, reply, status, work)),
  };
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
    written.getStore()?.push(event.id);
    return { event, message: toOutboxMessage(event, traceToStore(trace)) };
  };
}

export function outboxEmitter(source: string, now: () => Date = () => new Date()): Emit {
  return async (tx, type, data, trace = {}) => {
    const event = createEvent(type, { source, data, time: now() });
    await appendToOutbox(tx, toOutboxMessage(event, traceToStore(trace)));
    written.getStore()?.push(event.id);
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
