import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Topics } from '@ripple/events';
import { dlqTopicOf } from '@ripple/kafka';
import { KAFKA_TOPIC_FILES, renderKafkaTopics } from './kafka-topics.js';
import { parseDocuments, readRepoFile } from './manifests.js';

for (const [file, sizing] of Object.entries(KAFKA_TOPIC_FILES)) {
  test(`${file} should be up to date with the event catalog (run \`pnpm k8s:topics\`)`, () => {
    assert.equal(readRepoFile(file), renderKafkaTopics(sizing));
  });
}

test('the KafkaTopic resources should cover every catalog topic and its dead-letter topic', () => {
  const docs = parseDocuments(renderKafkaTopics({ partitions: 12, replicas: 3, minInSync: 2 })) as {
    kind: string;
    spec: { topicName: string; partitions: number; replicas: number };
  }[];
  const names = docs.map((d) => d.spec.topicName).sort();
  const expected = Object.values(Topics)
    .flatMap((t) => [t, dlqTopicOf(t)])
    .sort();
  assert.deepEqual(names, expected);
  assert.ok(docs.every((d) => d.kind === 'KafkaTopic' && d.spec.replicas === 3));
});
