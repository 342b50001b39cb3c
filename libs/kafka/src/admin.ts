import { kafkajsOf } from './client.js';
import type { KafkaClient } from './client.js';

/** The end and start of one partition (offsets as numbers: they stay far below 2^53). */
export interface PartitionOffsets {
  readonly partition: number;
  /** The offset the next message will get (the "high watermark"). */
  readonly high: number;
  /** The first offset still held. */
  readonly low: number;
}

/**
 * Cluster, topic and group administration over one connection: what services (the lag metric)
 * and tests (waiting for topics, reading ends, removing groups) need, no more.
 */
export interface KafkaAdmin {
  /** Opens the connection; call before anything else. */
  connect(): Promise<void>;
  /** Closes the connection. */
  disconnect(): Promise<void>;
  /** Names of all topics. */
  listTopics(): Promise<string[]>;
  /** Start and end offsets of every partition of `topic`. */
  topicOffsets(topic: string): Promise<PartitionOffsets[]>;
  /** The group's committed offset of each partition of `topics`; -1 where it committed none. */
  committedOffsets(
    groupId: string,
    topics: readonly string[],
  ): Promise<{ topic: string; partitions: { partition: number; offset: number }[] }[]>;
  /** Ids of all consumer groups. */
  listGroups(): Promise<string[]>;
  /** Deletes consumer groups; rejects while one of them still has members. */
  deleteGroups(groupIds: readonly string[]): Promise<void>;
  /**
   * The group's state as its coordinator reports it (`Empty`, `PreparingRebalance`,
   * `CompletingRebalance`, `Stable`, `Dead`) and the ids of its members.
   */
  describeGroup(groupId: string): Promise<{ state: string; members: string[] }>;
}

/** An admin connection of `client` (not connected yet). */
export function createKafkaAdmin(client: KafkaClient): KafkaAdmin {
  const admin = kafkajsOf(client).admin();
  return {
    connect: () => admin.connect(),
    disconnect: () => admin.disconnect(),
    listTopics: () => admin.listTopics(),
    async topicOffsets(topic) {
      const offsets = await admin.fetchTopicOffsets(topic);
      return offsets.map((o) => ({ partition: o.partition, high: Number(o.high), low: Number(o.low) }));
    },
    async committedOffsets(groupId, topics) {
      const committed = await admin.fetchOffsets({ groupId, topics: [...topics] });
      return committed.map(({ topic, partitions }) => ({
        topic,
        partitions: partitions.map((p) => ({ partition: p.partition, offset: Number(p.offset) })),
      }));
    },
    async listGroups() {
      return (await admin.listGroups()).groups.map((g) => g.groupId);
    },
    async deleteGroups(groupIds) {
      await admin.deleteGroups([...groupIds]);
    },
    async describeGroup(groupId) {
      const [group] = (await admin.describeGroups([groupId])).groups;
      return { state: group?.state ?? 'Dead', members: (group?.members ?? []).map((m) => m.memberId) };
    },
  };
}

/** Per partition: how many messages the group has not committed yet (end offset - committed). */
export async function consumerLag(
  admin: KafkaAdmin,
  groupId: string,
  topics: readonly string[],
): Promise<{ topic: string; partition: number; lag: number }[]> {
  const committed = await admin.committedOffsets(groupId, topics);
  const out: { topic: string; partition: number; lag: number }[] = [];
  for (const { topic, partitions } of committed) {
    const ends = new Map((await admin.topicOffsets(topic)).map((e) => [e.partition, e.high]));
    for (const p of partitions) {
      const end = ends.get(p.partition) ?? 0;
      const at = p.offset;
      out.push({ topic, partition: p.partition, lag: at < 0 ? end : Math.max(0, end - at) });
    }
  }
  return out;
}
