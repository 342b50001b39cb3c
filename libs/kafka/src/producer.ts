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
import { RippleError } from '@ripple/errors';
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
  /**
   * Resolves once the broker acknowledged every message. Sends them in order, in as many produce
   * requests as `maxRequestBytes` (see `createEventProducer`) needs, one after the other, each
   * once the previous one was acknowledged; when one fails, the later ones are not sent and the
   * earlier ones stay written (so a retry of the same messages writes those again). Rejects with
   * `MessageTooLargeError`, sending nothing, when a message alone is over the bound.
   */
  send(messages: readonly OutgoingMessage[]): Promise<void>;
  disconnect(): Promise<void>;
}

/**
 * Most bytes of records one produce request of `createEventProducer` holds by default, as
 * `recordSizeBound` counts them. Below the broker's `message.max.bytes` (1,048,588 by default; the
 * platform's brokers and topics keep it), the most it takes in one partition's record batch, by
 * 48 KB: room for the record batch headers (61 bytes each) and the request's framing of each
 * topic and partition. A request holds at least one partition's batch, so bounding the request
 * bounds every batch in it too; it is far below the request limit (`socket.request.max.bytes`,
 * 100 MB).
 */
export const MAX_PRODUCE_REQUEST_BYTES = 1_000_000;

/**
 * An upper bound of the bytes `message` takes in a Kafka record batch (v2, uncompressed, as kafkajs
 * 2.2.4 encodes it: `protocol/recordBatch/record/v0`): UTF-8 key, value, header keys and values,
 * and every varint at its widest (length 5, attributes 1, timestamp delta 10, offset delta 5,
 * key and value lengths 5 each, header count 5; 10 more per header). Exceeds the exact size by at
 * most ~30 bytes plus 8 per header.
 */
export function recordSizeBound(message: Omit<OutgoingMessage, 'topic'>): number {
  let size = 36 + Buffer.byteLength(message.key) + Buffer.byteLength(message.value);
  for (const [key, value] of Object.entries(message.headers))
    size += 10 + Buffer.byteLength(key) + Buffer.byteLength(value);
  return size;
}

/**
 * `EventProducer.send` refused `messages` because some of them (`oversized`, their indexes) are
 * each bigger than one produce request may be (`limit`, in bytes as `recordSizeBound` counts):
 * the broker can never take them. Nothing was sent. Not retriable.
 */
export class MessageTooLargeError extends RippleError {
  constructor(
    readonly oversized: readonly { readonly index: number; readonly bytes: number }[],
    readonly limit: number,
  ) {
    super(
      'KAFKA_MESSAGE_TOO_LARGE',
      `${oversized.length} message(s) over the ${limit}-byte bound of a produce request (the largest: ${Math.max(...oversized.map((o) => o.bytes))} bytes)`,
    );
    this.name = 'MessageTooLargeError';
  }
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
  opts: {
    metrics?: Registry;
    logger?: Logger;
    /** Most bytes of records (`recordSizeBound`) in one produce request (default `MAX_PRODUCE_REQUEST_BYTES`). */
    maxRequestBytes?: number;
  } = {},
): EventProducer {
  const maxRequestBytes = opts.maxRequestBytes ?? MAX_PRODUCE_REQUEST_BYTES;
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
      const traced = messages.map((m) => {
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
        const message = { topic: m.topic, key: m.key, value: m.value, headers };
        return { message, span, bytes: recordSizeBound(message) };
      });
      const oversized = traced.flatMap((t, index) => (t.bytes > maxRequestBytes ? [{ index, bytes: t.bytes }] : []));
      const requests = oversized.length > 0 ? [] : splitByBytes(traced, maxRequestBytes);
      let acknowledged = 0;
      try {
        if (oversized.length > 0) throw new MessageTooLargeError(oversized, maxRequestBytes);
        for (const request of requests) {
          await sendBatch({ acks: -1, topicMessages: byTopic(request.map((t) => t.message)) });
          acknowledged++;
          for (const { message: m, span } of request) {
            span.end();
            published?.inc({ topic: m.topic, type: m.headers.ce_type ?? 'unknown' });
          }
        }
      } catch (err) {
        const unacknowledged = oversized.length > 0 ? traced : requests.slice(acknowledged).flat();
        for (const { span } of unacknowledged) {
          span.recordException(err as Error);
          span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
          span.end();
        }
        if (!(err instanceof MessageTooLargeError)) health?.failed(err, { during: 'send' });
        throw err;
      }
      health?.recovered();
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

/**
 * `items` cut, in order, into runs whose `bytes` add up to at most `maxBytes` each (an item over
 * it alone is a run of its own; `send` refuses those before it cuts).
 */
function splitByBytes<T extends { readonly bytes: number }>(items: readonly T[], maxBytes: number): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let bytes = 0;
  for (const item of items) {
    if (run.length > 0 && bytes + item.bytes > maxBytes) {
      runs.push(run);
      run = [];
      bytes = 0;
    }
    run.push(item);
    bytes += item.bytes;
  }
  if (run.length > 0) runs.push(run);
  return runs;
}

/** kafkajs' request shape: the messages grouped by topic, each topic's in their order. */
function byTopic(
  messages: readonly { topic: string; key: string; value: string; headers: Record<string, string> }[],
): ProducerBatch['topicMessages'] {
  const topics = new Map<string, { key: string; value: string; headers: Record<string, string> }[]>();
  for (const m of messages) {
    let topicMessages = topics.get(m.topic);
    if (!topicMessages) topics.set(m.topic, (topicMessages = []));
    topicMessages.push({ key: m.key, value: m.value, headers: m.headers });
  }
  return [...topics].map(([topic, ms]) => ({ topic, messages: ms }));
}
