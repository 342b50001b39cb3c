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
import type { Logger, Registry, Span } from '@ripple/telemetry';
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
   * `MessageTooLargeError`, sending nothing, when a message alone is over the bound. A request the
   * broker refuses as too large (a topic whose `max.message.bytes` is below the bound) is sent
   * again in halves, in order, and the producer's requests stay at most that half from then on; a
   * message the broker refuses alone is skipped, the others go on, and `send` then rejects with
   * `MessageTooLargeError` naming it (`othersSent`).
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
 * `EventProducer.send` refused `messages` because some of them (`oversized`: their indexes, and
 * their sizes as `recordSizeBound` counts them) can never be written. Either each is bigger than
 * one produce request may be (`limit`, bytes) and nothing was sent (`othersSent` false), or the
 * broker refused each alone with MESSAGE_TOO_LARGE (over its topic's `max.message.bytes`; `limit`
 * undefined) and every other message was acknowledged (`othersSent` true). Not retriable.
 */
export class MessageTooLargeError extends RippleError {
  constructor(
    readonly oversized: readonly { readonly index: number; readonly bytes: number }[],
    readonly limit: number | undefined,
    readonly othersSent = false,
  ) {
    const largest = Math.max(...oversized.map((o) => o.bytes));
    super(
      'KAFKA_MESSAGE_TOO_LARGE',
      limit === undefined
        ? `${oversized.length} message(s) refused alone by the broker as over its max.message.bytes (the largest: ${largest} bytes); the others were sent`
        : `${oversized.length} message(s) over the ${limit}-byte bound of a produce request (the largest: ${largest} bytes)`,
    );
    this.name = 'MessageTooLargeError';
  }
}

/** Whether `err` (or a cause) is the broker refusing a record batch as too large for the topic or its log segment. */
function brokerTooLarge(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const type = (e as { type?: unknown }).type;
    if (type === 'MESSAGE_TOO_LARGE' || type === 'RECORD_LIST_TOO_LARGE') return true;
  }
  return false;
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
  /** The bound of a request: `maxRequestBytes`, or less once a topic refused a request as too large. */
  let requestBytes = maxRequestBytes;
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
      const failSpans = (items: readonly { span: Span }[], err: Error) => {
        for (const { span } of items) {
          span.recordException(err);
          span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
          span.end();
        }
      };
      const oversized = traced.flatMap((t, index) => (t.bytes > maxRequestBytes ? [{ index, bytes: t.bytes }] : []));
      if (oversized.length > 0) {
        const err = new MessageTooLargeError(oversized, maxRequestBytes);
        failSpans(traced, err);
        throw err;
      }
      const pending = splitByBytes(
        traced.map((t, index) => ({ ...t, index })),
        requestBytes,
      );
      const refused: { index: number; bytes: number }[] = [];
      try {
        for (let request = pending[0]; request !== undefined; request = pending[0]) {
          try {
            await sendBatch({ acks: -1, topicMessages: byTopic(request.map((t) => t.message)) });
          } catch (err) {
            if (!brokerTooLarge(err)) throw err;
            pending.shift();
            if (request.length === 1) {
              const [alone] = request as [(typeof request)[number]];
              refused.push({ index: alone.index, bytes: alone.bytes });
              failSpans(request, err as Error);
            } else {
              // The topic takes less than the bound: this request in halves, and every later one at most that.
              requestBytes = Math.max(1, Math.floor(request.reduce((sum, t) => sum + t.bytes, 0) / 2));
              opts.logger?.warn(
                { err, topics: [...new Set(request.map((t) => t.message.topic))], requestBytes },
                'the broker refused a produce request as too large for its topic; sending smaller requests',
              );
              pending.unshift(...splitByBytes(request, requestBytes));
            }
            continue;
          }
          pending.shift();
          for (const { message: m, span } of request) {
            span.end();
            published?.inc({ topic: m.topic, type: m.headers.ce_type ?? 'unknown' });
          }
        }
      } catch (err) {
        failSpans(pending.flat(), err as Error);
        health?.failed(err, { during: 'send' });
        throw err;
      }
      health?.recovered();
      if (refused.length > 0) throw new MessageTooLargeError(refused, undefined, true);
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
