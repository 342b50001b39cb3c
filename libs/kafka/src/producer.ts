import kafkajs from 'kafkajs';
import type { Producer, ProducerBatch } from 'kafkajs';
import {
  Counter,
  SpanKind,
  SpanStatusCode,
  connectionHealth,
  contextFromHeaders,
  trace,
  traceHeaders,
  tracer,
} from '@ripple/telemetry';
import type { Logger, Registry } from '@ripple/telemetry';
import { kafkajsOf } from './client.js';
import type { KafkaClient } from './client.js';

const { Partitioners } = kafkajs;

export interface OutgoingMessage {
  /** The deployed topic name (prefix included). */
  readonly topic: string;
  readonly key: string;
  readonly value: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** Publishes with the idempotent producer (acks from all in-sync replicas, one request in flight). */
export interface EventProducer {
  connect(): Promise<void>;
  /** Resolves once the broker acknowledged every message. */
  send(messages: readonly OutgoingMessage[]): Promise<void>;
  disconnect(): Promise<void>;
}

/**
 * Each message gets a `send <topic>` producer span whose parent is the trace context in its own
 * headers (an outbox row keeps its request's context) or else the active one; the span's context
 * replaces the message's `traceparent`, so the consumer continues the same trace. With `metrics`,
 * acknowledged messages are counted in `events_published_total` by topic and event type, and
 * producers replaced after the broker refused their sequence numbers (see `sendBatch` below) in
 * `kafka_producer_restarts_total`. With `metrics` and `logger`, failed connects and sends are
 * counted in `client_connection_errors_total{client="kafkajs",connection="producer"}`, logged
 * when the producer starts failing and when it works again.
 */
export function createEventProducer(
  client: KafkaClient,
  opts: { metrics?: Registry; logger?: Logger } = {},
): EventProducer {
  const newProducer = (): Producer =>
    kafkajsOf(client).producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
  let producer = newProducer();
  const restarts =
    opts.metrics &&
    new Counter({
      name: 'kafka_producer_restarts_total',
      help: 'Idempotent producers replaced by a fresh one (new producer id) because the broker refused their sequence numbers',
      registers: [opts.metrics],
    });
  /**
   * Sends through the current kafkajs producer. When the broker refuses its sequence numbers, the
   * producer is replaced by a fresh one (a new producer id, whose sequences start at 0) and the
   * batch sent once more: kafkajs rolls a failed request's sequence numbers back even where the
   * broker wrote it (a request cut by a broker shutdown, or half refused with
   * NOT_LEADER_OR_FOLLOWER), so after it gives up the next batch reuses sequence numbers the
   * broker already has, is refused with OUT_OF_ORDER_SEQUENCE_NUMBER, and so is every later one,
   * for ever: the outbox relay stopped publishing after a broker restart. What that written
   * request held reaches the topic twice (consumers drop duplicates by event id).
   */
  const sendBatch = async (batch: ProducerBatch): Promise<void> => {
    const current = producer;
    try {
      await current.sendBatch(batch);
      return;
    } catch (err) {
      if (!lostSequence(err)) throw err;
      if (producer === current) {
        opts.logger?.warn({ err }, 'the broker refused the producer sequence numbers; starting a fresh producer');
        restarts?.inc();
        producer = newProducer();
        void current.disconnect().catch(() => undefined);
      }
    }
    await producer.connect();
    await producer.sendBatch(batch);
  };
  const published =
    opts.metrics &&
    new Counter({
      name: 'events_published_total',
      help: 'Events acknowledged by Kafka, by topic and event type',
      labelNames: ['topic', 'type'],
      registers: [opts.metrics],
    });
  const health =
    opts.metrics &&
    opts.logger &&
    connectionHealth({ logger: opts.logger, metrics: opts.metrics, client: 'kafkajs', connection: 'producer' });
  return {
    async connect() {
      try {
        await producer.connect();
      } catch (err) {
        health?.failed(err, { during: 'connect' });
        throw err;
      }
      health?.recovered();
    },
    async send(messages) {
      const byTopic = new Map<string, { key: string; value: string; headers: Record<string, string> }[]>();
      const spans = messages.map((m) => {
        const parent = contextFromHeaders(m.headers);
        const span = tracer().startSpan(
          `send ${m.topic}`,
          {
            kind: SpanKind.PRODUCER,
            attributes: {
              'messaging.system': 'kafka',
              'messaging.operation.type': 'send',
              'messaging.destination.name': m.topic,
              'messaging.kafka.message.key': m.key,
              ...(m.headers.ce_type !== undefined && { 'cloudevents.event_type': m.headers.ce_type }),
              ...(m.headers.ce_id !== undefined && { 'cloudevents.event_id': m.headers.ce_id }),
            },
          },
          parent,
        );
        const headers = { ...m.headers, ...traceHeaders(trace.setSpan(parent, span)) };
        const list = byTopic.get(m.topic);
        const record = { key: m.key, value: m.value, headers };
        if (list) list.push(record);
        else byTopic.set(m.topic, [record]);
        return span;
      });
      try {
        await sendBatch({
          acks: -1,
          topicMessages: [...byTopic].map(([topic, ms]) => ({ topic, messages: ms })),
        });
      } catch (err) {
        for (const span of spans) {
          span.recordException(err as Error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
          span.end();
        }
        health?.failed(err, { during: 'send' });
        throw err;
      }
      health?.recovered();
      for (const span of spans) span.end();
      for (const m of messages) published?.inc({ topic: m.topic, type: m.headers.ce_type ?? 'unknown' });
    },
    disconnect: () => producer.disconnect(),
  };
}

/** kafkajs errors (or their causes) that say the broker's idempotence state and the producer's differ. */
const SEQUENCE_ERRORS = new Set([
  'OUT_OF_ORDER_SEQUENCE_NUMBER',
  'DUPLICATE_SEQUENCE_NUMBER',
  'UNKNOWN_PRODUCER_ID',
  'INVALID_PRODUCER_EPOCH',
  'INVALID_PRODUCER_ID_MAPPING',
]);

function lostSequence(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++)
    if (SEQUENCE_ERRORS.has((e as { type?: unknown }).type as string)) return true;
  return false;
}
