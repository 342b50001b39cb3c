// The reference for "is the Kafka client the limit?": a bare kafkajs consumer in its own group on
// the gateway's topic that only counts what it fetches and how late (no decoding, no validation,
// no routing, no sockets).
import { readTopics } from '@ripple/kafka';
import type { KafkaClient } from '@ripple/kafka';
import { stampOf } from './dialects.js';

export interface BareConsumer {
  /** Messages fetched since the last reset, and when the latest batch arrived (ms). */
  readonly received: number;
  readonly lastAt: number;
  /**
   * Since the last reset: ms from each message's scheduled send time (its payload's stamp) to the
   * batch's arrival here, as a [ms, count] histogram sorted by ms (publish → consumed, Kafka alone).
   */
  histogram(): [number, number][];
  reset(): void;
  stop(): Promise<void>;
}

export async function startBareConsumer(kafka: KafkaClient, topic: string, groupId: string): Promise<BareConsumer> {
  const state = { received: 0, lastAt: 0, latencies: new Map<number, number>() };
  const reader = await readTopics(kafka, {
    groupId,
    topics: [topic],
    fromBeginning: false,
    onBatch: (messages) => {
      const now = Date.now();
      state.received += messages.length;
      state.lastAt = now;
      for (const m of messages) {
        const stamp = m.value === null ? undefined : stampOf(m.value.toString());
        if (stamp === undefined) continue;
        const ms = Math.max(0, now - stamp);
        state.latencies.set(ms, (state.latencies.get(ms) ?? 0) + 1);
      }
    },
  });
  return {
    get received() {
      return state.received;
    },
    get lastAt() {
      return state.lastAt;
    },
    histogram: () => [...state.latencies].sort((a, b) => a[0] - b[0]),
    reset: () => {
      state.received = 0;
      state.latencies.clear();
    },
    stop: () => reader.stop(),
  };
}
