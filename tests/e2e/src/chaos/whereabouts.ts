import { Redis } from 'ioredis';
import pg from 'pg';
import { Topics } from '@ripple/events';
import { createKafkaAdmin, dlqTopicOf, readTopics } from '@ripple/kafka';
import type { KafkaClient, RawMessage } from '@ripple/kafka';
import { runId, waitUntil } from '@ripple/testing';
import type { EventWhereabouts, WhereaboutsProbe } from './diagnosis.js';

/** Where a chaos cluster keeps what `post.created` events pass through. */
export interface ClusterStores {
  /** post-service's database (its `outbox` table). */
  readonly databaseUrl: string;
  readonly kafka: KafkaClient;
  /** The deployment's topic prefix (KAFKA_TOPIC_PREFIX). */
  readonly topicPrefix: string;
  /** The gateways' consumer group. */
  readonly groupId: string;
  readonly redisUrl: string;
  /** The gateways' REDIS_KEY_PREFIX (history streams are `<prefix>history:{<channel>}`). */
  readonly redisPrefix: string;
}

/** The post id a `post.created` event (JSON text, as in the outbox, on Kafka and in history) carries. */
function postIdOf(json: string | undefined): string | undefined {
  try {
    return (JSON.parse(json ?? '') as { data?: { postId?: unknown } }).data?.postId?.toString();
  } catch {
    return undefined;
  }
}

/**
 * Reads, for events by post id, where they are: the outbox row (post-service's database), the
 * record on the post topic and its dead-letter topic (read whole by a reader group of its own)
 * with the gateways' committed offsets, and the entry in the channel's Redis history.
 */
export function clusterWhereabouts(stores: ClusterStores): WhereaboutsProbe {
  const topic = stores.topicPrefix + Topics.post;
  return {
    async locate(events) {
      const ids = [...new Set(events.map((e) => e.id))];
      const [outbox, records, history] = await Promise.all([
        readOutbox(stores.databaseUrl, ids),
        readTopic(stores, topic),
        readHistory(stores, [...new Set(events.map((e) => e.channel))]),
      ]);
      const out = new Map<string, EventWhereabouts>();
      for (const id of ids) {
        const record = records.onTopic.get(id);
        const historyOffset = history.get(id);
        out.set(id, {
          outbox: outbox.get(id) ?? 'absent',
          deadLettered: records.deadLettered.has(id),
          ...(record && { topic: record }),
          ...(historyOffset !== undefined && { historyOffset }),
        });
      }
      return out;
    },
  };
}

async function readOutbox(databaseUrl: string, ids: readonly string[]): Promise<Map<string, 'unsent' | 'sent'>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ id: string; sent: boolean }>(
      `SELECT value::jsonb->'data'->>'postId' AS id, sent FROM (
         SELECT topic, value, true AS sent FROM outbox_sent UNION ALL SELECT topic, value, false FROM outbox) every_row
       WHERE topic = $1 AND value::jsonb->'data'->>'postId' = ANY($2::text[])`,
      [Topics.post, ids],
    );
    return new Map(rows.map((r) => [r.id, r.sent ? 'sent' : 'unsent']));
  } finally {
    await client.end();
  }
}

/**
 * Every record of `topic` and of its dead-letter topic, read to their current ends: where each post
 * id is, and whether the gateways' group committed an offset past it.
 */
async function readTopic(
  stores: ClusterStores,
  topic: string,
): Promise<{
  onTopic: Map<string, { partition: number; offset: number; committed: boolean }>;
  deadLettered: Set<string>;
}> {
  const dlq = dlqTopicOf(topic);
  const admin = createKafkaAdmin(stores.kafka);
  await admin.connect();
  let ends: Map<string, number>;
  let committed: Map<number, number>;
  try {
    ends = new Map();
    for (const t of [topic, dlq])
      for (const p of await admin.topicOffsets(t)) if (p.high > p.low) ends.set(`${t}/${p.partition}`, p.high);
    const [offsets] = await admin.committedOffsets(stores.groupId, [topic]);
    committed = new Map((offsets?.partitions ?? []).map((p) => [p.partition, p.offset]));
  } finally {
    await admin.disconnect();
  }
  const onTopic = new Map<string, { partition: number; offset: number; committed: boolean }>();
  const deadLettered = new Set<string>();
  const read = new Map<string, number>(); // topic/partition -> next offset read
  const take = (m: RawMessage) => {
    const offset = Number(m.offset);
    read.set(`${m.topic}/${m.partition}`, offset + 1);
    const id = postIdOf(m.value?.toString());
    if (id === undefined) return;
    if (m.topic === dlq) deadLettered.add(id);
    // The first record of an id is the one that counts (a re-publish after a lost mark is a duplicate).
    else if (!onTopic.has(id))
      onTopic.set(id, { partition: m.partition, offset, committed: (committed.get(m.partition) ?? -1) > offset });
  };
  const reader = await readTopics(stores.kafka, {
    groupId: `chaos-whereabouts-${runId()}`,
    topics: [topic, dlq],
    fromBeginning: true,
    onBatch: (messages) => messages.forEach(take),
  });
  try {
    await waitUntil(`reading ${topic} to its end`, 60_000, () =>
      [...ends].every(([key, high]) => (read.get(key) ?? 0) >= high),
    );
  } finally {
    await reader.stop();
  }
  return { onTopic, deadLettered };
}

/** Post id -> offset, of every entry in the histories of `channels`. */
async function readHistory(stores: ClusterStores, channels: readonly string[]): Promise<Map<string, string>> {
  const redis = new Redis(stores.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  try {
    const out = new Map<string, string>();
    for (const channel of channels) {
      // Stream ids are `<offset>-0`; each entry holds the event as field `p`.
      const entries = await redis.xrange(`${stores.redisPrefix}history:{${channel}}`, '-', '+');
      for (const [streamId, fields] of entries) {
        const id = postIdOf(fields[1]);
        if (id !== undefined && !out.has(id)) out.set(id, streamId.replace(/-0$/, ''));
      }
    }
    return out;
  } finally {
    redis.disconnect();
  }
}
