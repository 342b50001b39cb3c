// The reference for "is the Kafka client the limit?": a bare kafkajs consumer in its own group on
// the gateway's topic that only counts what it fetches (no decoding, no routing, no sockets).
import type { Kafka } from '@ripple/kafka';

export interface BareConsumer {
  /** Messages fetched since the last reset, and when the latest batch arrived (ms). */
  readonly received: number;
  readonly lastAt: number;
  reset(): void;
  stop(): Promise<void>;
}

export async function startBareConsumer(kafka: Kafka, topic: string, groupId: string): Promise<BareConsumer> {
  const consumer = kafka.consumer({ groupId });
  const state = { received: 0, lastAt: 0 };
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: false });
  await consumer.run({
    eachBatch: ({ batch }) => {
      state.received += batch.messages.length;
      state.lastAt = Date.now();
      return Promise.resolve();
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
    stop: () => consumer.disconnect(),
  };
}
