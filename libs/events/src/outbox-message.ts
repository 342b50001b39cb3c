import { partitionKeyFor, topicFor } from './routing.js';
import { validateEvent } from './validate.js';
import type { AnyEvent } from './catalog.js';

/** CloudEvents Kafka protocol binding, binary-mode attribute headers (`ce_<attr>`). */
export function cloudEventHeaders(event: AnyEvent): Record<string, string> {
  return {
    ce_specversion: event.specversion,
    ce_id: event.id,
    ce_source: event.source,
    ce_type: event.type,
    ce_time: event.time,
    ce_subject: event.subject,
    ce_dataschema: event.dataschema,
    'content-type': 'application/cloudevents+json; charset=UTF-8',
  };
}

/** What a service stores in its outbox for one event: validated now, published by the relay. */
export interface OutboxMessage {
  readonly eventId: string;
  /** Logical topic (no prefix). */
  readonly topic: string;
  readonly key: string;
  readonly value: string;
  readonly headers: Record<string, string>;
}

export function toOutboxMessage(event: AnyEvent): OutboxMessage {
  validateEvent(event);
  return {
    eventId: event.id,
    topic: topicFor(event),
    key: partitionKeyFor(event),
    value: JSON.stringify(event),
    headers: cloudEventHeaders(event),
  };
}
