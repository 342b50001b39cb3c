import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createEvent, toOutboxMessage } from '@ripple/events';
import { RippleError } from '@ripple/errors';
import { createLogger } from '@ripple/telemetry';
import { cleanupAll, runId, testInfra, waitFor, waitUntil } from '@ripple/testing';
import {
  MAX_PRODUCE_REQUEST_BYTES,
  MessageTooLargeError,
  consumerLag,
  createEventConsumer,
  createEventProducer,
  createKafka,
  createKafkaAdmin,
  deleteGroups,
  deleteTopics,
  dlqTopicOf,
  ensureTopics,
  readTopics,
  recordSizeBound,
} from './index.js';
import kafkajs from 'kafkajs';
import { kafkajsOf } from './client.js';
import type { ConsumedMeta, EventConsumerOptions, EventProducer } from './index.js';

// Against the real broker: createTopics with explicit partitions, the idempotent producer, consumer
// groups, retries, the dead-letter path, and resuming from committed offsets.
const logger = createLogger('kafka-test', 'silent');
const kafka = createKafka({ brokers: testInfra.kafkaBrokers, clientId: 'kafka-test', logger });
const run = runId();
const topics: string[] = [];
const cleanups: (() => Promise<void>)[] = [];

const ourGroups = (group: string) => group.startsWith(`test.${run}.`);

after(() =>
  cleanupAll(
    ...cleanups.reverse(),
    () =>
      deleteTopics(
        kafka,
        topics.flatMap((t) => [t, dlqTopicOf(t)]),
      ),
    () => deleteGroups(kafka, ourGroups),
  ),
);

async function newTopic(name: string, partitions: number): Promise<string> {
  const topic = `test.${run}.${name}`;
  topics.push(topic);
  await ensureTopics(kafka, [
    { topic, numPartitions: partitions, replicationFactor: 1, retentionMs: 3_600_000 },
    { topic: dlqTopicOf(topic), numPartitions: 1, replicationFactor: 1 },
  ]);
  return topic;
}

let sharedProducer: EventProducer | undefined;
async function producer(): Promise<EventProducer> {
  if (!sharedProducer) {
    const p = createEventProducer(kafka);
    await p.connect();
    cleanups.push(() => p.disconnect());
    sharedProducer = p;
  }
  return sharedProducer;
}

async function consumer(topic: string, group: string, overrides: Partial<EventConsumerOptions>) {
  const c = createEventConsumer({
    kafka,
    groupId: `test.${run}.${group}`,
    topics: [topic],
    logger,
    dlqProducer: await producer(),
    startAt: 'earliest',
    onEvent: () => Promise.resolve(),
    ...overrides,
  });
  await c.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await c.stop();
  };
  cleanups.push(stop);
  return { stop };
}

function liked(postId: string, seq: number) {
  return createEvent('post.liked', {
    source: 'kafka-test',
    data: { postId, postAuthorId: 'u1', userId: `u${seq}`, likeCount: seq, at: new Date().toISOString() },
  });
}

async function publish(topic: string, events: ReturnType<typeof liked>[]): Promise<void> {
  await (await producer()).send(events.map((e) => ({ ...toOutboxMessage(e), topic })));
}

async function deadLetters(
  topic: string,
): Promise<{ value: string; code: string | undefined; message: string | undefined }[]> {
  const dead: { value: string; code: string | undefined; message: string | undefined }[] = [];
  const reader = kafkajsOf(kafka).consumer({ groupId: `test.${run}.dlq.${runId()}` });
  await reader.connect();
  cleanups.push(() => reader.disconnect());
  await reader.subscribe({ topics: [dlqTopicOf(topic)], fromBeginning: true });
  await reader.run({
    eachMessage: ({ message }) => {
      dead.push({
        value: message.value?.toString() ?? '',
        code: message.headers?.dlq_error_code?.toString(),
        message: message.headers?.dlq_error_message?.toString(),
      });
      return Promise.resolve();
    },
  });
  return dead;
}

test('kafkajs should create topics with explicit partitions and deliver one key in order to a group', async () => {
  const topic = await newTopic('order', 3);
  const admin = kafkajsOf(kafka).admin();
  await admin.connect();
  const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
  const configs = await admin.describeConfigs({
    resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic, configNames: ['retention.ms'] }],
    includeSynonyms: false,
  });
  await admin.disconnect();
  assert.equal(metadata.topics[0]?.partitions.length, 3);
  assert.equal(configs.resources[0]?.configEntries[0]?.configValue, '3600000');

  const received: { id: string; seq: number; meta: ConsumedMeta }[] = [];
  await consumer(topic, 'order', {
    onEvent: (event, meta) => {
      received.push({ id: event.id, seq: (event.data as { likeCount: number }).likeCount, meta });
      return Promise.resolve();
    },
  });
  const a = [1, 2, 3, 4, 5].map((i) => liked('pa', i));
  const b = [1, 2, 3].map((i) => liked('pb', i));
  await publish(
    topic,
    [a[0], b[0], a[1], a[2], b[1], a[3], b[2], a[4]].filter((e) => e !== undefined),
  );

  await waitUntil('all events', 30_000, () => received.length >= 8);
  assert.deepEqual(received.map((r) => r.id).sort(), [...a, ...b].map((e) => e.id).sort());
  const seqOf = (postId: string, events: typeof a) =>
    received.filter((r) => events.some((e) => e.id === r.id)).map((r) => r.seq);
  assert.deepEqual(seqOf('pa', a), [1, 2, 3, 4, 5]);
  assert.deepEqual(seqOf('pb', b), [1, 2, 3]);
  assert.equal(received[0]?.meta.headers?.ce_type?.toString(), 'post.liked');
});

test('deleteGroups should remove the groups it is given once their members have left, waiting for a member still in one', async () => {
  const topic = await newTopic('groups', 1);
  let handled = 0;
  const member = await consumer(topic, 'groups', {
    onEvent: () => {
      handled += 1;
      return Promise.resolve();
    },
  });
  await publish(topic, [liked('pg', 1)]);
  await waitUntil('the event handled and committed', 30_000, () => handled === 1);
  const admin = createKafkaAdmin(kafka);
  await admin.connect();
  try {
    assert.ok((await admin.listGroups()).includes(`test.${run}.groups`));
    // The member leaves a moment after the deletion starts: the first refusals are retried.
    setTimeout(() => void member.stop(), 1000);
    await deleteGroups(kafka, (group) => group === `test.${run}.groups`);
    assert.deepEqual((await admin.listGroups()).filter(ourGroups).includes(`test.${run}.groups`), false);
  } finally {
    await admin.disconnect();
  }
});

test('a malformed message should land in the DLQ with its reason while later messages are still processed', async () => {
  const topic = await newTopic('poison', 1);
  const handled: string[] = [];
  await consumer(topic, 'poison', {
    onEvent: (event) => {
      handled.push(event.id);
      return Promise.resolve();
    },
  });
  const before = liked('p1', 1);
  const afterwards = liked('p1', 2);
  await publish(topic, [before]);
  await (
    await producer()
  ).send([
    { topic, key: 'p1', value: '{not json', headers: {} },
    { topic, key: 'p1', value: JSON.stringify({ ...liked('p1', 3), data: { postId: 'p1' } }), headers: {} },
  ]);
  await publish(topic, [afterwards]);

  await waitUntil('the events around the poison', 30_000, () => handled.length >= 2);
  assert.deepEqual(handled, [before.id, afterwards.id]);
  const dead = await deadLetters(topic);
  await waitUntil('both dead letters', 30_000, () => dead.length >= 2);
  assert.equal(dead[0]?.value, '{not json');
  assert.deepEqual(
    dead.map((d) => d.code),
    ['EVENT_INVALID', 'EVENT_INVALID'],
  );
  assert.match(dead[1]?.message ?? '', /post\.liked event is invalid/);
});

test('a handler should be retried with backoff on retriable errors, and dead-lettered when it gives up or refuses', async () => {
  const topic = await newTopic('retry', 1);
  const attempts = new Map<number, number>();
  const handled: number[] = [];
  await consumer(topic, 'retry', {
    maxAttempts: 3,
    initialBackoffMs: 10,
    onEvent: (event) => {
      const seq = (event.data as { likeCount: number }).likeCount;
      const n = (attempts.get(seq) ?? 0) + 1;
      attempts.set(seq, n);
      if (seq === 1 && n < 3) return Promise.reject(new Error('database busy')); // succeeds on the 3rd try
      if (seq === 2) return Promise.reject(new Error('always down')); // gives up
      if (seq === 3) return Promise.reject(new RippleError('POST_GONE', 'refused', { retriable: false }));
      handled.push(seq);
      return Promise.resolve();
    },
  });
  await publish(
    topic,
    [1, 2, 3, 4].map((i) => liked('p1', i)),
  );
  await waitUntil('the last event', 30_000, () => handled.includes(4));
  assert.deepEqual(handled, [1, 4]);
  assert.deepEqual(
    [...attempts],
    [
      [1, 3],
      [2, 3],
      [3, 1],
      [4, 1],
    ],
  );
  const dead = await deadLetters(topic);
  await waitUntil('two dead letters', 30_000, () => dead.length >= 2);
  assert.deepEqual(
    dead.map((d) => d.code),
    ['HANDLER_GAVE_UP', 'POST_GONE'],
  );
});

test('a consumer restarted mid-stream should resume from its committed offset without gaps', async () => {
  const topic = await newTopic('resume', 1);
  const events = Array.from({ length: 60 }, (_, i) => liked('p1', i + 1));
  const seqOf = (event: { data: unknown }) => (event.data as { likeCount: number }).likeCount;
  await publish(topic, events.slice(0, 20));

  const firstRun: number[] = [];
  const first = await consumer(topic, 'resume', {
    onEvent: (event) => {
      firstRun.push(seqOf(event));
      return Promise.resolve();
    },
  });
  await waitUntil('the first part of the stream', 30_000, () => firstRun.length >= 20);
  await first.stop();
  // The stream goes on while nobody consumes.
  await publish(topic, events.slice(20));

  const secondRun: number[] = [];
  await consumer(topic, 'resume', {
    onEvent: (event) => {
      secondRun.push(seqOf(event));
      return Promise.resolve();
    },
  });
  await waitUntil('the rest of the stream', 30_000, () => secondRun.includes(60));
  assert.deepEqual(
    firstRun,
    Array.from({ length: 20 }, (_, i) => i + 1),
  );
  // A graceful stop committed everything it handled: the restart neither skips nor repeats.
  assert.deepEqual(
    secondRun,
    Array.from({ length: 40 }, (_, i) => i + 21),
  );
});

test('the consumer should skip an event id it has just handled', async () => {
  const topic = await newTopic('dedupe', 1);
  const handled: string[] = [];
  await consumer(topic, 'dedupe', {
    onEvent: (event) => {
      handled.push(event.id);
      return Promise.resolve();
    },
  });
  const event = liked('p1', 1);
  const next = liked('p1', 2);
  await publish(topic, [event, event, next]);
  await waitFor('the next event', 30_000, () => (handled.includes(next.id) ? true : undefined));
  assert.deepEqual(handled, [event.id, next.id]);
});

test('a batch consumer should hand over runs of events in order, dead-letter only the poison, and resume from its commit', async () => {
  const topic = await newTopic('batch', 1);
  const batches: string[][] = [];
  const oneByOne: string[] = [];
  const poison = liked('p1', 99);
  const options: Partial<EventConsumerOptions> = {
    onBatch: (items) => {
      // A batch holding the poison event fails for good: it is handled again one event at a time.
      if (items.some((i) => i.event.id === poison.id)) return Promise.reject(new RippleError('REFUSED', 'no'));
      batches.push(items.map((i) => i.event.id));
      return Promise.resolve();
    },
    onEvent: (event) => {
      if (event.id === poison.id) return Promise.reject(new RippleError('REFUSED', 'no'));
      oneByOne.push(event.id);
      return Promise.resolve();
    },
  };
  const first = Array.from({ length: 20 }, (_, i) => liked('p1', i));
  await publish(topic, first);
  const c = await consumer(topic, 'batch', options);
  await waitUntil('the first events', 30_000, () => batches.flat().length >= 20);
  assert.deepEqual(
    batches.flat(),
    first.map((e) => e.id),
    'in offset order, once each',
  );
  assert.ok(
    batches.some((b) => b.length > 1),
    'several events per batch',
  );

  const around = [liked('p1', 30), poison, liked('p1', 31)];
  await publish(topic, around);
  const dead = await deadLetters(topic);
  await waitUntil('the poison in the DLQ', 30_000, () => dead.length >= 1);
  await waitUntil('the events around it', 30_000, () => oneByOne.length >= 2);
  assert.deepEqual(oneByOne, [around[0]?.id, around[2]?.id]);
  assert.equal(dead[0]?.code, 'REFUSED');

  // A new member of the group starts after what was committed: nothing is handed over twice.
  await c.stop();
  const later = liked('p1', 40);
  await publish(topic, [later]);
  batches.length = 0;
  await consumer(topic, 'batch', options);
  await waitUntil('the event after the restart', 30_000, () => batches.flat().length >= 1);
  assert.deepEqual(batches.flat(), [later.id]);
});

test('the admin port should list topics, read ends and lag, and the raw reader should see every record', async (t) => {
  const topic = await newTopic('port', 2);
  const admin = createKafkaAdmin(kafka);
  await admin.connect();
  t.after(() => admin.disconnect());
  assert.ok((await admin.listTopics()).includes(topic));

  const events = [1, 2, 3].map((i) => liked('port', i));
  await publish(topic, events);
  const ends = await admin.topicOffsets(topic);
  assert.equal(ends.length, 2);
  assert.equal(
    ends.reduce((sum, p) => sum + p.high - p.low, 0),
    3,
  );

  const groupId = `test.${run}.port.${runId()}`;
  assert.deepEqual(
    (await consumerLag(admin, groupId, [topic])).reduce((sum, l) => sum + l.lag, 0),
    3,
    'a group that committed nothing lags by everything',
  );
  const seen: string[] = [];
  const reader = await readTopics(kafka, {
    groupId,
    topics: [topic],
    fromBeginning: true,
    onMessage: (m) => seen.push((JSON.parse(m.value?.toString() ?? '{}') as { id: string }).id),
  });
  t.after(() => reader.stop());
  await waitUntil('the reader to see the 3 records', 30_000, () => seen.length >= 3);
  assert.deepEqual([...seen].sort(), events.map((e) => e.id).sort());
  assert.ok((await admin.listGroups()).includes(groupId));
  await reader.stop();
  await admin.deleteGroups([groupId]);
  assert.ok(!(await admin.listGroups()).includes(groupId));
});

test('a batch consumer should commit what it handled within the commit interval, also when no more events come', async (t) => {
  const topic = await newTopic('interval', 2);
  const admin = createKafkaAdmin(kafka);
  await admin.connect();
  t.after(() => admin.disconnect());
  const group = 'interval';
  const groupId = `test.${run}.${group}`;
  const handled: string[] = [];
  await consumer(topic, group, {
    commitIntervalMs: 300,
    onBatch: (items) => {
      handled.push(...items.map((i) => i.event.id));
      return Promise.resolve();
    },
  });
  const events = Array.from({ length: 6 }, (_, i) => liked(`interval${i % 3}`, i));
  await publish(topic, events.slice(0, 3));
  await waitUntil('the first events handled', 30_000, () => handled.length >= 3);
  // These come right after the first batches' commit: within the interval, so not committed at once.
  await publish(topic, events.slice(3));
  await waitUntil('every event handled', 30_000, () => handled.length >= events.length);
  // Nothing else arrives: the interval's commit carries the last batches' offsets all the same.
  await waitUntil('the group to have committed everything', 10_000, async () => {
    const lags = await consumerLag(admin, groupId, [topic]);
    return lags.length > 0 && lags.every((l) => l.lag === 0);
  });
});

test('a producer should publish again after the broker wrote part of a request it reported as failed', async (t) => {
  // One request for two topics: the broker writes the batch of `ok` and refuses the one of
  // `small` (over its max.message.bytes). kafkajs takes back the sequence numbers of the whole
  // request, so its next batch of `ok` reuses numbers the broker already has: refused with
  // OUT_OF_ORDER_SEQUENCE_NUMBER, as every later one was (the outbox relay after a broker restart
  // cut a request it had written). The send itself names the message the topic refused alone
  // (MessageTooLargeError) once the rest is written: `first` once, as the broker keeps it.
  const ok = await newTopic('half-written-ok', 1);
  const small = `test.${run}.half-written-small`;
  topics.push(small);
  const admin = kafkajsOf(kafka).admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      {
        topic: small,
        numPartitions: 1,
        replicationFactor: 1,
        configEntries: [{ name: 'max.message.bytes', value: '1024' }],
      },
    ],
  });
  await admin.disconnect();
  const p = createEventProducer(kafka);
  await p.connect();
  t.after(() => p.disconnect());
  const message = (topic: string, value: string) => ({ topic, key: 'k', value, headers: {} });

  await assert.rejects(p.send([message(ok, 'first'), message(small, 'x'.repeat(4096))]), MessageTooLargeError);
  await p.send([message(ok, 'second'), message(ok, 'third')]);

  const values: string[] = [];
  const reader = await readTopics(kafka, {
    groupId: `test.${run}.half-written`,
    topics: [ok],
    fromBeginning: true,
    onMessage: (m) => values.push(m.value?.toString() ?? ''),
  });
  t.after(() => reader.stop());
  await waitUntil('three records on the topic', 30_000, () => values.length >= 3);
  assert.deepEqual(values, ['first', 'second', 'third']);
});

test("the broker should take a partition's record batch filled up to the producer's request bound", async (t) => {
  // The bound (MAX_PRODUCE_REQUEST_BYTES) is below the broker's max.message.bytes with margin:
  // one key (one partition, one record batch) filled to within a record of it, and one message
  // alone as large as the bound allows, must both be accepted as they are.
  const topic = await newTopic('request-bound', 1);
  const p = createEventProducer(kafka);
  await p.connect();
  t.after(() => p.disconnect());
  const headers = { ce_type: 'test.filled', ce_id: '00000000-0000-4000-8000-000000000000' };
  const filler = Array.from({ length: 200 }, (_, i) => ({
    topic,
    key: 'k',
    value: `${i}:`.padEnd(9_990, 'é'),
    headers,
  }));
  const one = { topic, key: 'k', value: '', headers };
  // The trace headers the producer adds (traceparent: 55 bytes, its key 11, 10 of framing).
  const largest = { ...one, value: 'x'.repeat(MAX_PRODUCE_REQUEST_BYTES - recordSizeBound(one) - 76) };
  assert.ok(
    recordSizeBound({
      ...largest,
      headers: { ...headers, traceparent: `00-${'0'.repeat(32)}-${'0'.repeat(16)}-01` },
    }) <= MAX_PRODUCE_REQUEST_BYTES,
  );
  await p.send([...filler, largest]);

  const values: string[] = [];
  const reader = await readTopics(kafka, {
    groupId: `test.${run}.request-bound`,
    topics: [topic],
    fromBeginning: true,
    onMessage: (m) => values.push(m.value?.toString() ?? ''),
  });
  t.after(() => reader.stop());
  await waitUntil('201 records on the topic', 30_000, () => values.length >= 201);
  assert.deepEqual(
    values,
    [...filler, largest].map((m) => m.value),
  );
});

test('a consumer stopped while it joins its group should leave the group, and never join it again', async (t) => {
  const topic = await newTopic('stop-joining', 2);
  const groupId = `test.${run}.stop-joining`;
  // A member already in the group that hears of the next rebalance only at its next heartbeat
  // (every 8 s): a second member's join waits in the broker until then.
  const slow = kafkajsOf(kafka).consumer({
    groupId,
    sessionTimeout: 30_000,
    rebalanceTimeout: 30_000,
    heartbeatInterval: 8_000,
  });
  await slow.connect();
  t.after(() => slow.disconnect());
  await slow.subscribe({ topics: [topic], fromBeginning: true });
  let slowJoined = 0;
  slow.on(slow.events.GROUP_JOIN, () => (slowJoined += 1));
  await slow.run({ eachMessage: () => Promise.resolve() });
  await waitUntil('the first member in the group', 30_000, () => slowJoined === 1);

  const admin = kafkajsOf(kafka).admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  const group = async () => (await admin.describeGroups([groupId])).groups[0];
  let handled = 0;
  const joining = createEventConsumer({
    kafka,
    groupId,
    topics: [topic],
    logger,
    dlqProducer: await producer(),
    startAt: 'earliest',
    sessionTimeoutMs: 30_000,
    onEvent: () => {
      handled += 1;
      return Promise.resolve();
    },
  });
  void joining.start().catch(() => undefined);
  await waitUntil(
    'the second member to be joining',
    30_000,
    async () => (await group())?.state === 'PreparingRebalance',
  );
  await joining.stop();
  // Once the first member heard of the rebalance, the group settles with it alone: the stopped
  // member either left or never finished its join, and does not come back.
  await waitUntil('the group to settle', 30_000, async () => (await group())?.state === 'Stable');
  assert.equal((await group())?.members.length, 1);
  await publish(topic, [liked('sj', 1)]);
  await new Promise((r) => setTimeout(r, 9_000));
  const settled = await group();
  assert.equal(settled?.state, 'Stable');
  assert.equal(settled?.members.length, 1, 'the stopped consumer joined the group again');
  assert.equal(handled, 0, 'the stopped consumer handled an event');
});

test('a consumer stopped while it starts should not join its group afterwards', async (t) => {
  const topic = await newTopic('stop-starting', 1);
  const groupId = `test.${run}.stop-starting`;
  const admin = kafkajsOf(kafka).admin();
  await admin.connect();
  t.after(() => admin.disconnect());
  const starting = createEventConsumer({
    kafka,
    groupId,
    topics: [topic],
    logger,
    dlqProducer: await producer(),
    onEvent: () => Promise.resolve(),
  });
  // Stopped while it still reads the group's offsets (startAt 'latest'), before it connected.
  const started = starting.start().then(
    () => 'joined',
    () => 'refused',
  );
  await starting.stop();
  assert.equal(await started, 'refused');
  await new Promise((r) => setTimeout(r, 5_000));
  const [group] = (await admin.describeGroups([groupId])).groups;
  assert.deepEqual(group?.members, [], 'the stopped consumer joined its group');
});
