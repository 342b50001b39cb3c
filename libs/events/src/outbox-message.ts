import { createHash } from 'node:crypto';
import { partitionKeyFor, topicFor } from './routing.js';
import { validateEvent } from './validate.js';
import type { AnyEvent } from './catalog.js';

/**
 * The outbox is split into this many shards by a hash of the partition key; one relay at a time
 * publishes a shard, which keeps each aggregate's events in order. Changing it needs an empty
 * outbox (all rows sent).
 */
export const OUTBOX_SHARDS = 32;

export function outboxShardOf(key: string): number {
  return createHash('sha1').update(key).digest().readUInt32BE(0) % OUTBOX_SHARDS;
}

/**
 * The content type of every event message: CloudEvents structured mode (the value is the whole
 * envelope as JSON), whatever the attribute headers mirror.
 */
export const CLOUDEVENTS_CONTENT_TYPE = 'application/cloudevents+json; charset=UTF-8';

/**
 * Kafka headers of an event: `content-type` (structured mode, `CLOUDEVENTS_CONTENT_TYPE`) and the
 * CloudEvents attributes mirrored as `ce_<attr>`, so consumers can route without parsing the value.
 */
export function cloudEventHeaders(event: AnyEvent): Record<string, string> {
  return {
    ce_specversion: event.specversion,
    ce_id: event.id,
    ce_source: event.source,
    ce_type: event.type,
    ce_time: event.time,
    ce_subject: event.subject,
    ce_dataschema: event.dataschema,
    'content-type': CLOUDEVENTS_CONTENT_TYPE,
  };
}

/** What a service stores in its outbox for one event: validated now, published by the relay. */
export interface OutboxMessage {
  readonly eventId: string;
  /** Logical topic (no prefix). */
  readonly topic: string;
  readonly key: string;
  readonly shard: number;
  readonly value: string;
  /** Kafka headers: the `ce_*` attributes plus the W3C trace context of the request, if any. */
  readonly headers: Record<string, string>;
}

const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

export function toOutboxMessage(
  event: AnyEvent,
  trace: { traceparent?: string; tracestate?: string } = {},
): OutboxMessage {
  validateEvent(event);
  const key = partitionKeyFor(event);
  const headers = cloudEventHeaders(event);
  if (trace.traceparent !== undefined && TRACEPARENT.test(trace.traceparent)) {
    headers.traceparent = trace.traceparent;
    if (trace.tracestate) headers.tracestate = trace.tracestate;
  }
  return {
    eventId: event.id,
    topic: topicFor(event),
    key,
    shard: outboxShardOf(key),
    value: JSON.stringify(event),
    headers,
  };
}
