import kafkajs from 'kafkajs';
import type { Kafka, Producer } from 'kafkajs';

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

export function createEventProducer(kafka: Kafka): EventProducer {
  const producer: Producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  return {
    connect: () => producer.connect(),
    async send(messages) {
      const byTopic = new Map<string, OutgoingMessage[]>();
      for (const m of messages) byTopic.set(m.topic, [...(byTopic.get(m.topic) ?? []), m]);
      await producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, ms]) => ({
          topic,
          messages: ms.map((m) => ({ key: m.key, value: m.value, headers: { ...m.headers } })),
        })),
      });
    },
    disconnect: () => producer.disconnect(),
  };
}
