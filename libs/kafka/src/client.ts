import kafkajs from 'kafkajs';
import type { Kafka, LogEntry } from 'kafkajs';
import type { Logger } from '@ripple/telemetry';

const { Kafka: KafkaClient, logLevel } = kafkajs;

export type { Kafka };

function toPino(logger: Logger) {
  return () =>
    ({ level, label, log }: LogEntry): void => {
      const { message, ...rest } = log;
      const fields = { kafka: label, ...rest };
      if (level === logLevel.ERROR) logger.error(fields, message);
      else if (level === logLevel.WARN) logger.warn(fields, message);
      else if (level === logLevel.INFO) logger.debug(fields, message);
      else logger.trace(fields, message);
    };
}

/** A kafkajs client whose logs go through our structured logger. */
export function createKafka(opts: { brokers: string[]; clientId: string; logger: Logger }): Kafka {
  return new KafkaClient({
    clientId: opts.clientId,
    brokers: opts.brokers,
    logLevel: logLevel.INFO,
    logCreator: toPino(opts.logger),
    retry: { initialRetryTime: 200, retries: 8 },
  });
}

export interface TopicSpec {
  readonly topic: string;
  readonly numPartitions: number;
  readonly replicationFactor: number;
  /** `retention.ms`; the broker default when absent. */
  readonly retentionMs?: number;
}

/** Creates the topics that do not exist yet; partitions and replication are always explicit. */
export async function ensureTopics(kafka: Kafka, specs: readonly TopicSpec[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = specs.filter((s) => !existing.has(s.topic));
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((s) => ({
          topic: s.topic,
          numPartitions: s.numPartitions,
          replicationFactor: s.replicationFactor,
          configEntries: s.retentionMs === undefined ? [] : [{ name: 'retention.ms', value: String(s.retentionMs) }],
        })),
      });
    }
  } finally {
    await admin.disconnect();
  }
}

/** Deletes topics (tests clean up after themselves). Missing topics are ignored. */
export async function deleteTopics(kafka: Kafka, topics: readonly string[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const present = topics.filter((t) => existing.has(t));
    if (present.length > 0) await admin.deleteTopics({ topics: present });
  } finally {
    await admin.disconnect();
  }
}

/** Per partition: how many messages the group has not committed yet (end offset - committed). */
export async function consumerLag(
  admin: ReturnType<Kafka['admin']>,
  groupId: string,
  topics: readonly string[],
): Promise<{ topic: string; partition: number; lag: number }[]> {
  const committed = await admin.fetchOffsets({ groupId, topics: [...topics] });
  const out: { topic: string; partition: number; lag: number }[] = [];
  for (const { topic, partitions } of committed) {
    const ends = new Map((await admin.fetchTopicOffsets(topic)).map((e) => [e.partition, Number(e.high)]));
    for (const p of partitions) {
      const end = ends.get(p.partition) ?? 0;
      const at = Number(p.offset);
      out.push({ topic, partition: p.partition, lag: at < 0 ? end : Math.max(0, end - at) });
    }
  }
  return out;
}

/** A /readyz check: resolves when the cluster answers a metadata request. */
export function kafkaReadiness(admin: ReturnType<Kafka['admin']>): () => Promise<void> {
  return async () => {
    await admin.describeCluster();
  };
}
