import { kafkajsOf } from './client.js';
import type { KafkaClient } from './client.js';

/** One record as it is on the topic: no decoding, no validation. */
export interface RawMessage {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  /** Its headers as text (a repeated header keeps its last value). */
  readonly headers: Readonly<Record<string, string>>;
}

type KafkaHeaders = Readonly<Record<string, Buffer | string | (Buffer | string)[] | undefined>> | undefined;

function textHeaders(headers: KafkaHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    const last = Array.isArray(value) ? value.at(-1) : value;
    if (last !== undefined) out[name] = last.toString();
  }
  return out;
}

export interface TopicReaderOptions {
  /** A group of its own: the reader commits its offsets like any consumer. */
  readonly groupId: string;
  readonly topics: readonly string[];
  /** Start at the beginning of partitions the group has no offset for (else at their end). */
  readonly fromBeginning: boolean;
  /** Called for each message, in order per partition. Exactly one of onMessage and onBatch. */
  readonly onMessage?: (message: RawMessage) => void;
  /** Called once per fetched batch of one partition (benchmarks: counts without per-message cost). */
  readonly onBatch?: (messages: readonly RawMessage[]) => void;
}

/** A running reader; `stop` leaves the group and closes its connections. */
export interface TopicReader {
  stop(): Promise<void>;
}

/**
 * A raw reader of topics, for tests and benchmarks that look at what is on a topic (the
 * platform's own consumers use `createEventConsumer`, which validates, retries and dead-letters).
 * Resolves once the reader is subscribed and running.
 */
export async function readTopics(client: KafkaClient, opts: TopicReaderOptions): Promise<TopicReader> {
  const { onMessage, onBatch } = opts;
  if ((onMessage === undefined) === (onBatch === undefined)) throw new Error('readTopics: give onMessage or onBatch');
  const consumer = kafkajsOf(client).consumer({ groupId: opts.groupId });
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [...opts.topics], fromBeginning: opts.fromBeginning });
    if (onBatch !== undefined) {
      await consumer.run({
        eachBatch: ({ batch }) => {
          onBatch(
            batch.messages.map((m) => ({
              topic: batch.topic,
              partition: batch.partition,
              offset: m.offset,
              key: m.key,
              value: m.value,
              headers: textHeaders(m.headers),
            })),
          );
          return Promise.resolve();
        },
      });
    } else if (onMessage !== undefined) {
      await consumer.run({
        eachMessage: ({ topic, partition, message }) => {
          onMessage({
            topic,
            partition,
            offset: message.offset,
            key: message.key,
            value: message.value,
            headers: textHeaders(message.headers),
          });
          return Promise.resolve();
        },
      });
    }
  } catch (err) {
    await consumer.disconnect();
    throw err;
  }
  return { stop: () => consumer.disconnect() };
}
