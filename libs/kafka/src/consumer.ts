import type { Consumer, IHeaders, Kafka, KafkaMessage } from 'kafkajs';
import { decodeEvent } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import { isRippleError } from '@ripple/errors';
import type { Logger } from '@ripple/telemetry';
import type { EventProducer } from './producer.js';

export interface ConsumedMeta {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly headers: IHeaders | undefined;
}

export interface EventConsumerOptions {
  readonly kafka: Kafka;
  readonly groupId: string;
  /** Deployed topic names. */
  readonly topics: readonly string[];
  readonly logger: Logger;
  /** Producer used to write poison messages to `<topic>.dlq`. */
  readonly dlqProducer: EventProducer;
  readonly fromBeginning?: boolean;
  /**
   * Handles one valid event. Resolving commits its offset. Rejecting with a non-retriable
   * RippleError dead-letters the message; any other rejection is retried (the partition waits).
   */
  readonly onEvent: (event: AnyEvent, meta: ConsumedMeta) => Promise<void>;
}

export interface EventConsumer {
  /** Resolves once the consumer joined its group and is fetching. */
  start(): Promise<void>;
  /** Commits what is done and leaves the group. */
  stop(): Promise<void>;
}

export function dlqTopicOf(topic: string): string {
  return `${topic}.dlq`;
}

function describe(err: unknown): { code: string; message: string; retriable: boolean } {
  if (isRippleError(err)) return { code: err.code, message: err.message, retriable: err.retriable };
  return { code: 'HANDLER_FAILED', message: err instanceof Error ? err.message : String(err), retriable: true };
}

/**
 * Consumes events one message at a time; an offset is committed only after its handler resolved
 * (at-least-once). Invalid messages and non-retriable failures go to the DLQ and never stop the
 * partition.
 */
export function createEventConsumer(opts: EventConsumerOptions): EventConsumer {
  const consumer: Consumer = opts.kafka.consumer({ groupId: opts.groupId, allowAutoTopicCreation: false });

  async function deadLetter(topic: string, partition: number, message: KafkaMessage, err: unknown): Promise<void> {
    const { code, message: reason } = describe(err);
    opts.logger.error({ topic, partition, offset: message.offset, code, reason }, 'message dead-lettered');
    await opts.dlqProducer.send([
      {
        topic: dlqTopicOf(topic),
        key: message.key?.toString('utf8') ?? '',
        value: message.value?.toString('utf8') ?? '',
        headers: {
          dlq_error_code: code,
          dlq_error_message: reason,
          dlq_source_topic: topic,
          dlq_source_partition: String(partition),
          dlq_source_offset: message.offset,
        },
      },
    ]);
  }

  return {
    async start() {
      await consumer.connect();
      await consumer.subscribe({ topics: [...opts.topics], fromBeginning: opts.fromBeginning ?? false });
      const joined = new Promise<void>((resolve) => {
        const off = consumer.on(consumer.events.GROUP_JOIN, () => {
          off();
          resolve();
        });
      });
      await consumer.run({
        eachMessage: async ({ topic, partition, message }) => {
          let event: AnyEvent;
          try {
            event = decodeEvent(message.value);
          } catch (err) {
            await deadLetter(topic, partition, message, err);
            return;
          }
          try {
            await opts.onEvent(event, { topic, partition, offset: message.offset, headers: message.headers });
          } catch (err) {
            if (describe(err).retriable) throw err;
            await deadLetter(topic, partition, message, err);
          }
        },
      });
      await joined;
    },
    async stop() {
      await consumer.disconnect();
    },
  };
}
