import { test } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import type { Admin, Kafka } from 'kafkajs';
import { ensureTopics, handleOf } from './client.js';

const { KafkaJSProtocolError } = kafkajs;

/** A broker's protocol error as kafkajs builds it from its error table's entry. */
const protocolError = (type: string, code: number, retriable: boolean) =>
  new KafkaJSProtocolError({ type, code, retriable, message: type } as unknown as Error);

/**
 * An admin stand-in over one set of topics: `createTopics` adds them, then `fail(call)` may throw
 * (as kafkajs' own wait for leaders did); metadata shows no leader for the first `leaderlessReads`.
 */
function fakeKafka(opts: { fail?: (call: number) => Error | undefined; leaderlessReads?: number }) {
  const topics = new Set<string>();
  const calls = { create: 0, metadata: 0, disconnect: 0 };
  const admin = {
    connect: () => Promise.resolve(),
    disconnect: () => {
      calls.disconnect++;
      return Promise.resolve();
    },
    listTopics: () => Promise.resolve([...topics]),
    createTopics: ({ topics: specs }: { topics: { topic: string }[] }) => {
      for (const s of specs) topics.add(s.topic);
      const err = opts.fail?.(calls.create++);
      return err ? Promise.reject(err) : Promise.resolve(true);
    },
    fetchTopicMetadata: ({ topics: names }: { topics: string[] }) => {
      const leader = calls.metadata++ < (opts.leaderlessReads ?? 0) ? -1 : 0;
      return Promise.resolve({ topics: names.map((name) => ({ name, partitions: [{ partitionId: 0, leader }] })) });
    },
  } as unknown as Admin;
  const kafka = { admin: () => admin } as unknown as Kafka;
  return { client: handleOf(kafka, 'test'), topics, calls };
}

const spec = { topic: 'posts', numPartitions: 1, replicationFactor: 1 };
const quick = { retries: 5, minTimeout: 1, maxTimeout: 5 };

test("ensureTopics should retry a new topic's 'does not host this topic-partition' and wait for its leaders", async () => {
  const kafka = fakeKafka({
    fail: (call) => (call === 0 ? protocolError('UNKNOWN_TOPIC_OR_PARTITION', 3, true) : undefined),
    leaderlessReads: 2,
  });
  await ensureTopics(kafka.client, [spec], quick);
  assert.deepEqual([...kafka.topics], ['posts']);
  assert.equal(kafka.calls.create, 1, 'created once: the retry finds it there');
  assert.equal(kafka.calls.metadata, 3, 'read until every partition has a leader');
  assert.equal(kafka.calls.disconnect, 1);
});

test('ensureTopics should reject at once on an error that is not retriable, and when retries run out', async () => {
  const refused = fakeKafka({ fail: () => protocolError('INVALID_REPLICATION_FACTOR', 38, false) });
  await assert.rejects(ensureTopics(refused.client, [spec], quick), { type: 'INVALID_REPLICATION_FACTOR' });
  assert.equal(refused.calls.create, 1);
  assert.equal(refused.calls.disconnect, 1);
  const leaderless = fakeKafka({ leaderlessReads: Number.POSITIVE_INFINITY });
  await assert.rejects(ensureTopics(leaderless.client, [spec], quick), /no leader yet for posts/);
  assert.equal(leaderless.calls.metadata, quick.retries + 1);
});
