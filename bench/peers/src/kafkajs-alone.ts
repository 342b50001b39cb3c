// The reference for "is the Kafka client the limit?": a bare kafkajs consumer in its own group on
// the gateway's topic that only counts what it fetches (no decoding, no routing, no sockets).
import { readTopics } from '@ripple/kafka';
import type { KafkaClient } from '@ripple/kafka';

export interface BareConsumer {
  /** Messages fetched since the last reset, and when the latest batch arrived (ms). */
  readonly received: number;
  readonly lastAt: number;
  reset(): void;
  stop(): Promise<void>;
}

export async function startBareConsumer(kafka: KafkaClient, topic: string, groupId: string): Promise<BareConsumer> {
  const state = { received: 0, lastAt: 0 };
  const reader = await readTopics(kafka, {
    groupId,
    topics: [topic],
    fromBeginning: false,
    onBatch: (messages) => {
      state.received += messages.length;
      state.lastAt = Date.now();
    },
  });
  return {
    get received() {
      return state.received;
    },
    get lastAt() {
      return state.lastAt;
    },
    reset: () => {
      state.received = 0;
    },
    stop: () => reader.stop(),
  };
}
