import { stringify } from 'yaml';
import { Topics } from '@ripple/events';
import { dlqTopicOf } from '@ripple/kafka';

/** How an overlay's cluster sizes the topics. */
export interface TopicSizing {
  /** Partitions of each event topic: the most gateway replicas that consume at once. */
  readonly partitions: number;
  /** Copies of each partition (at most the number of brokers). */
  readonly replicas: number;
  /** `min.insync.replicas`: acknowledged writes survive `replicas - minInSync` brokers down. */
  readonly minInSync: number;
}

/** Each overlay's generated file (repository-relative) and its cluster's sizing. */
export const KAFKA_TOPIC_FILES: Readonly<Record<string, TopicSizing>> = {
  'k8s/overlays/prod/kafka-topics.yaml': { partitions: 12, replicas: 3, minInSync: 2 },
  'k8s/overlays/dev/kafka-topics.yaml': { partitions: 3, replicas: 1, minInSync: 1 },
};

const WEEK_MS = 7 * 24 * 3600 * 1000;

/** A Strimzi resource name: lowercase RFC 1123 (`post.events.v1.dlq` -> `post-events-v1-dlq`). */
function resourceName(topic: string): string {
  return topic.replace(/[^a-z0-9-]/g, '-');
}

/**
 * The Strimzi `KafkaTopic` resources of every topic in the event catalog and of its dead-letter
 * topic, as one multi-document YAML text, for cluster `ripple`. Event topics keep events a week
 * (a gateway or consumer down that long still catches up); dead-letter topics four weeks, for
 * an operator to inspect and replay; both with the idempotent producer's acks=all.
 */
export function renderKafkaTopics(sizing: TopicSizing): string {
  const topics = Object.values(Topics).flatMap((topic) => [
    { topic, partitions: sizing.partitions, retentionMs: WEEK_MS },
    { topic: dlqTopicOf(topic), partitions: 1, retentionMs: 4 * WEEK_MS },
  ]);
  const header =
    '# Generated from the event catalog (libs/events) by `pnpm k8s:topics`; do not edit.\n' +
    '# One KafkaTopic per topic and per dead-letter topic (<topic>.dlq), for the Strimzi topic operator.\n';
  return (
    header +
    topics
      .map(({ topic, partitions, retentionMs }) =>
        stringify({
          apiVersion: 'kafka.strimzi.io/v1beta2',
          kind: 'KafkaTopic',
          metadata: { name: resourceName(topic), labels: { 'strimzi.io/cluster': 'ripple' } },
          spec: {
            topicName: topic,
            partitions,
            replicas: sizing.replicas,
            config: {
              'retention.ms': retentionMs,
              'min.insync.replicas': sizing.minInSync,
              'cleanup.policy': 'delete',
            },
          },
        }),
      )
      .join('---\n')
  );
}
