import { test } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import type { Consumer, EachBatchPayload, GroupDescription, Kafka, KafkaMessage } from 'kafkajs';
import { createEvent, toOutboxMessage } from '@ripple/events';
import { RippleError } from '@ripple/errors';
import { createLogger } from '@ripple/telemetry';
import { handleOf } from './client.js';
import { createEventConsumer } from './consumer.js';
import type { EventConsumerOptions } from './consumer.js';
import type { EventProducer } from './producer.js';

/** Offset commits the stand-in received, each settled by the test. */
interface Commit {
  readonly offsets: { topic: string; partitions: { partition: number; offset: string }[] }[];
  settle(): void;
}

/**
 * A kafkajs client stand-in with one consumer whose `run` only keeps the `eachBatch` handler: the
 * test plays kafkajs' fetch loop, which hands over a partition's next batch only once the previous
 * `eachBatch` call returned. Offset commits stay pending until the test settles them.
 */
function fakeKafka() {
  const commits: Commit[] = [];
  const seeks: { topic: string; partition: number; offset: string }[] = [];
  let eachBatch: ((payload: EachBatchPayload) => Promise<void>) | undefined;
  const resolved = new Map<number, string>();
  const state = { running: true, heartbeats: 0, disconnects: 0 };
  const listeners = new Map<string, (event: { payload: unknown }) => void>();
  /** What `describeGroup` answers (the group coordinator); set by a test. */
  const group = { describe: (): Promise<GroupDescription> => new Promise<GroupDescription>(() => undefined) };
  const consumer = {
    events: { GROUP_JOIN: 'join', CRASH: 'crash', REBALANCING: 'rebalancing' },
    on: (event: string, listener: (event: { payload: unknown }) => void) => listeners.set(event, listener),
    describeGroup: () => group.describe(),
    connect: () => Promise.resolve(),
    subscribe: () => Promise.resolve(),
    disconnect: () => {
      state.disconnects += 1;
      return Promise.resolve();
    },
    seek: (to: { topic: string; partition: number; offset: string }) => seeks.push(to),
    run: (config: { eachBatch: (payload: EachBatchPayload) => Promise<void> }) => {
      eachBatch = config.eachBatch;
      // kafkajs' `run` resolves once the consumer joined its group: this one counts as joined at once.
      return Promise.resolve();
    },
  } as unknown as Consumer;
  const kafka = { consumer: () => consumer } as unknown as Kafka;
  const payload = (topic: string, partition: number, messages: KafkaMessage[]): EachBatchPayload =>
    ({
      batch: { topic, partition, messages },
      resolveOffset: (offset: string) => resolved.set(partition, String(Number(offset) + 1)),
      uncommittedOffsets: () => ({
        topics: [{ topic, partitions: [...resolved].map(([p, offset]) => ({ partition: p, offset })) }],
      }),
      commitOffsetsIfNecessary: (offsets: { topics: Commit['offsets'] }) =>
        new Promise<void>((settle) => commits.push({ offsets: offsets.topics, settle })),
      heartbeat: () => {
        state.heartbeats += 1;
        return Promise.resolve();
      },
      isRunning: () => state.running,
      isStale: () => false,
    }) as unknown as EachBatchPayload;
  return {
    client: handleOf(kafka, 'test'),
    commits,
    seeks,
    /** Where kafkajs would fetch each partition next (its resolved offsets). */
    resolved,
    /**
     * kafkajs' `isRunning()` for every batch handed over (false: it stopped or is restarting), and the
     * heartbeats sent through the batches' payloads.
     */
    state,
    group,
    /** kafkajs' GROUP_JOIN: this consumer joined as `memberId`, assigned `assignment`. */
    join: (memberId: string, assignment: Record<string, number[]>) =>
      listeners.get('join')?.({ payload: { memberId, memberAssignment: assignment } }),
    /** kafkajs' CRASH: `restart` when kafkajs restarts the consumer itself (a retriable error). */
    crash: (restart: boolean) => listeners.get('crash')?.({ payload: { error: new Error('crashed'), restart } }),
    batch: (topic: string, partition: number, messages: KafkaMessage[]) => {
      if (!eachBatch) throw new Error('the consumer is not running');
      return eachBatch(payload(topic, partition, messages));
    },
  };
}

/** A promise with its resolve and reject at hand. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: Error) => void } {
  const settle: { resolve?: () => void; reject?: (err: Error) => void } = {};
  const promise = new Promise<void>((resolve, reject) => Object.assign(settle, { resolve, reject }));
  return { promise, resolve: () => settle.resolve?.(), reject: (err) => settle.reject?.(err) };
}

/** Waits (bounded) until `check` holds, yielding to the event loop in between. */
async function until(what: string, check: () => boolean): Promise<void> {
  await within(
    (async () => {
      while (!check()) await new Promise((r) => setImmediate(r));
    })(),
    5000,
    what,
  );
}

function message(offset: number): KafkaMessage {
  const event = createEvent('post.liked', {
    source: 'consumer-test',
    data: { postId: 'p1', postAuthorId: 'u1', userId: `u${offset}`, likeCount: offset, at: new Date().toISOString() },
  });
  return { offset: String(offset), value: Buffer.from(toOutboxMessage(event).value) } as unknown as KafkaMessage;
}

/** Resolves with `promise`'s outcome, or rejects when it did not settle within `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** A batch consumer over the stand-in whose batches go to `onBatch`; every batch is past the commit interval. */
function batchConsumer(kafka: ReturnType<typeof fakeKafka>, onBatch: NonNullable<EventConsumerOptions['onBatch']>) {
  return createEventConsumer({
    kafka: kafka.client,
    groupId: 'g',
    topics: ['t'],
    logger: createLogger('consumer-test', 'silent'),
    dlqProducer: {} as EventProducer,
    startAt: 'earliest',
    commitIntervalMs: 0,
    onEvent: () => Promise.resolve(),
    onBatch,
  });
}

test('a batch consumer should hand over the next batch while an offset commit is in flight, one commit at a time', async () => {
  const kafka = fakeKafka();
  const handled: string[] = [];
  const consumer = batchConsumer(kafka, (items) => {
    handled.push(...items.map((i) => i.meta.offset));
    return Promise.resolve();
  });
  await consumer.begin();

  // The coordinator does not answer the first commit: the fetch loop must not wait for it.
  await within(kafka.batch('t', 0, [message(0), message(1)]), 5000, 'the first batch returning');
  assert.equal(kafka.commits.length, 1);
  await within(kafka.batch('t', 0, [message(2)]), 5000, 'the second batch returning');
  assert.deepEqual(handled, ['0', '1', '2']);
  assert.equal(kafka.commits.length, 1, 'no second commit while the first is in flight');

  // Once the first is answered, the next carries every offset handled since.
  kafka.commits[0]?.settle();
  await within(
    (async () => {
      while (kafka.commits.length < 2) await new Promise((r) => setImmediate(r));
    })(),
    5000,
    'the next commit',
  );
  assert.deepEqual(kafka.commits[0]?.offsets[0]?.partitions, [{ partition: 0, offset: '2' }]);
  assert.deepEqual(kafka.commits[1]?.offsets[0]?.partitions, [{ partition: 0, offset: '3' }]);
  kafka.commits[1]?.settle();
  await consumer.stop();
});

/** A batch consumer over the stand-in whose `onBatch` calls wait until the test settles them. */
async function gatedConsumer(kafka: ReturnType<typeof fakeKafka>, dlqProducer = {} as EventProducer) {
  const calls: { offsets: string[]; gate: ReturnType<typeof deferred> }[] = [];
  const consumer = createEventConsumer({
    kafka: kafka.client,
    groupId: 'g',
    topics: ['t'],
    logger: createLogger('consumer-test', 'silent'),
    dlqProducer,
    startAt: 'earliest',
    commitIntervalMs: 0,
    maxAttempts: 1,
    onEvent: () => Promise.reject(new RippleError('BAD', 'not retriable', { retriable: false })),
    onBatch: (items) => {
      const gate = deferred();
      calls.push({ offsets: items.map((i) => i.meta.offset), gate });
      return gate.promise;
    },
  });
  await consumer.begin();
  return { consumer, calls };
}

test('a batch consumer should let kafkajs fetch the next batch while one is routed, and route a partition in order', async () => {
  const kafka = fakeKafka();
  const { consumer, calls } = await gatedConsumer(kafka);

  // The first batch returns while its routing is still in flight, with kafkajs' position past it.
  await within(kafka.batch('t', 0, [message(0), message(1)]), 5000, 'the first batch returning');
  assert.deepEqual(
    calls.map((c) => c.offsets),
    [['0', '1']],
  );
  assert.equal(kafka.resolved.get(0), '2', 'kafkajs fetches from after the queued batch');
  assert.equal(kafka.commits.length, 0, 'nothing is committed before routing finished');

  // The second batch queues behind the first: not routed, and not returned, until the first is done.
  let secondReturned = false;
  const second = kafka.batch('t', 0, [message(2)]).then(() => (secondReturned = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(calls.length, 1, 'the second batch waits for the first');
  assert.equal(secondReturned, false, 'eachBatch returns once the batch before it is done');
  calls[0]?.gate.resolve();
  await within(second, 5000, 'the second batch returning');
  await until('the second batch routed', () => calls.length === 2);
  assert.deepEqual(calls[1]?.offsets, ['2']);

  // Only what finished routing is committed: offset 2 is still in flight.
  await until('a commit', () => kafka.commits.length === 1);
  assert.deepEqual(kafka.commits[0]?.offsets, [{ topic: 't', partitions: [{ partition: 0, offset: '2' }] }]);
  kafka.commits[0]?.settle();
  calls[1]?.gate.resolve();
  await until('the next commit', () => kafka.commits.length === 2);
  assert.deepEqual(kafka.commits[1]?.offsets, [{ topic: 't', partitions: [{ partition: 0, offset: '3' }] }]);
  kafka.commits[1]?.settle();
  await consumer.stop();
});

test('a batch consumer should route partitions independently: one slow partition does not hold another', async () => {
  const kafka = fakeKafka();
  const { consumer, calls } = await gatedConsumer(kafka);
  await kafka.batch('t', 0, [message(0)]);
  await kafka.batch('t', 1, [message(0)]);
  assert.equal(calls.length, 2, 'both partitions route at once');
  calls[1]?.gate.resolve();
  await until('a commit', () => kafka.commits.length === 1);
  assert.deepEqual(kafka.commits[0]?.offsets, [{ topic: 't', partitions: [{ partition: 1, offset: '1' }] }]);
  kafka.commits[0]?.settle();
  calls[0]?.gate.resolve();
  await until('the next commit', () => kafka.commits.length === 2);
  assert.deepEqual(kafka.commits[1]?.offsets, [{ topic: 't', partitions: [{ partition: 0, offset: '1' }] }]);
  kafka.commits[1]?.settle();
  await consumer.stop();
});

test('a batch consumer should commit nothing of a batch that failed, drop the batches behind it and fetch again from it', async () => {
  const kafka = fakeKafka();
  // The batch fails for good and the DLQ cannot be written: the events are neither routed nor dead-lettered.
  const dlq = { send: () => Promise.reject(new Error('Kafka is down')) } as unknown as EventProducer;
  const { consumer, calls } = await gatedConsumer(kafka, dlq);
  await kafka.batch('t', 0, [message(0)]);
  calls[0]?.gate.resolve();
  await until('a commit', () => kafka.commits.length === 1);
  kafka.commits[0]?.settle();

  await kafka.batch('t', 0, [message(1), message(2)]);
  const third = kafka.batch('t', 0, [message(3)]);
  calls[1]?.gate.reject(new RippleError('BAD', 'not retriable', { retriable: false }));
  await within(third, 5000, 'the third batch returning');
  await until('a seek', () => kafka.seeks.length === 1);
  assert.deepEqual(kafka.seeks, [{ topic: 't', partition: 0, offset: '1' }], 'fetched again from the failed batch');
  assert.equal(calls.length, 2, 'the batch queued behind the failed one is not routed');
  assert.equal(kafka.commits.length, 1, 'nothing past the last routed offset is committed');
  await consumer.stop();
  assert.equal(kafka.commits.length, 1, 'stopping commits nothing new either');
});

test('a batch consumer should not hand over again what it still routes when kafkajs fetches it again after a rebalance', async () => {
  const kafka = fakeKafka();
  const { consumer, calls } = await gatedConsumer(kafka);
  await kafka.batch('t', 0, [message(0), message(1)]);
  // The group rebalanced and gave the partition back: kafkajs fetches from the committed offset (0).
  const again = kafka.batch('t', 0, [message(0), message(1), message(2)]);
  calls[0]?.gate.resolve();
  await within(again, 5000, 'the batch fetched again returning');
  await until('the new message routed', () => calls.length === 2);
  assert.deepEqual(
    calls.map((c) => c.offsets),
    [['0', '1'], ['2']],
  );
  calls[1]?.gate.resolve();
  // The coordinator answers every commit; the last one carries both batches, each routed once.
  const last = () => kafka.commits.at(-1)?.offsets[0]?.partitions[0]?.offset;
  await until('offset 3 committed', () => {
    for (const c of kafka.commits) c.settle();
    return last() === '3';
  });
  kafka.commits.at(-1)?.settle();
  await consumer.stop();
});

test('a batch consumer should hand over again what kafkajs fetches again after it stopped a queued batch short', async () => {
  const kafka = fakeKafka();
  const { consumer, calls } = await gatedConsumer(kafka);
  await kafka.batch('t', 0, [message(0)]);
  const queued = kafka.batch('t', 0, [message(1), message(2)]);
  // kafkajs stops this consumer's run (a crash it restarts from): the queued batch is cut short ...
  kafka.state.running = false;
  calls[0]?.gate.resolve();
  await within(queued, 5000, 'the queued batch returning');
  assert.equal(calls.length, 1, 'the queued batch is not handed over by a stopped run');
  // ... and the restarted run fetches it again from the committed offset: it must not be skipped.
  kafka.state.running = true;
  const again = kafka.batch('t', 0, [message(1), message(2)]);
  await until('the batch fetched again routed', () => calls.length === 2);
  assert.deepEqual(calls[1]?.offsets, ['1', '2']);
  calls[1]?.gate.resolve();
  await within(again, 5000, 'the batch fetched again returning');
  await until('offset 3 committed', () => {
    for (const c of kafka.commits) c.settle();
    return kafka.commits.at(-1)?.offsets[0]?.partitions[0]?.offset === '3';
  });
  kafka.commits.at(-1)?.settle();
  await consumer.stop();
});

test('a batch handler that waits should keep the group session alive meanwhile, and its offsets are committed only once it resolved', async (t) => {
  const kafka = fakeKafka();
  const gate = deferred();
  t.after(() => gate.resolve()); // a failed check must not leave the handler waiting
  let waiting = 0;
  const consumer = batchConsumer(
    kafka,
    // Backpressure: the handler waits (for sockets to drain, in the gateway), heartbeating meanwhile.
    async (_items, control) => {
      waiting += 1;
      let done = false;
      void gate.promise.then(() => (done = true));
      while (!done) {
        control.keepAlive();
        await new Promise((r) => setTimeout(r, 1));
      }
    },
  );
  await consumer.begin();
  await within(kafka.batch('t', 0, [message(0)]), 5000, 'the first batch returning');
  await until('the handler waiting', () => waiting === 1);
  const before = kafka.state.heartbeats;
  await until('heartbeats while the handler waits', () => kafka.state.heartbeats >= before + 3);
  assert.equal(kafka.commits.length, 0, 'nothing is committed while the batch waits');
  gate.resolve();
  await until('the commit after the batch', () => kafka.commits.length === 1);
  assert.deepEqual(kafka.commits[0]?.offsets[0]?.partitions, [{ partition: 0, offset: '1' }]);
  kafka.commits[0]?.settle();
  await consumer.stop();
});

/** Stops `consumer`, settling every offset commit it makes meanwhile. */
async function stopSettling(kafka: ReturnType<typeof fakeKafka>, consumer: { stop(): Promise<void> }): Promise<void> {
  const settling = setInterval(() => kafka.commits.forEach((c) => c.settle()), 1);
  try {
    await within(consumer.stop(), 5000, 'the consumer stopping');
  } finally {
    clearInterval(settling);
  }
}

/** The group as `describeGroup` answers once member `memberId` holds `assignment` in a stable generation. */
function stableGroup(memberId: string, assignment: Record<string, number[]>): GroupDescription {
  const memberAssignment = kafkajs.AssignerProtocol.MemberAssignment.encode({
    version: 0,
    assignment,
    userData: Buffer.alloc(0),
  });
  return {
    groupId: 'g',
    protocol: 'RoundRobinAssigner',
    protocolType: 'consumer',
    state: 'Stable',
    members: [{ memberId, clientId: 'c', clientHost: 'h', memberMetadata: Buffer.alloc(0), memberAssignment }],
  };
}

test('a fenced batch consumer should fetch again, for its next join, a batch of a join superseded before its token was confirmed, when that join kept the partition', async () => {
  const kafka = fakeKafka();
  const routed: { offset: string; fence: number | undefined }[] = [];
  let issued = 0;
  const consumer = createEventConsumer({
    kafka: kafka.client,
    groupId: 'g',
    topics: ['t'],
    logger: createLogger('consumer-test', 'silent'),
    dlqProducer: {} as EventProducer,
    startAt: 'earliest',
    commitIntervalMs: 0,
    onEvent: () => Promise.resolve(),
    onBatch: (items) => {
      routed.push(...items.map((i) => ({ offset: i.meta.offset, fence: i.meta.fence })));
      return Promise.resolve();
    },
    fenceTokens: () => Promise.resolve((issued += 1)),
  });
  await consumer.begin();
  // The first join's token waits for the coordinator; its batch waits for the token.
  const coordinator = deferred();
  kafka.group.describe = () => coordinator.promise.then(() => stableGroup('m1', { t: [0] }));
  kafka.join('m1', { t: [0] });
  await within(kafka.batch('t', 0, [message(0), message(1)]), 5000, 'the batch returning');
  // A rebalance: the next join keeps the partition, and is confirmed.
  kafka.join('m1', { t: [0] });
  coordinator.resolve();
  await until('the batch fetched again from its first offset', () => kafka.seeks.length > 0);
  assert.deepEqual(kafka.seeks, [{ topic: 't', partition: 0, offset: '0' }]);
  assert.deepEqual(routed, [], 'nothing routed under the unconfirmed join');
  // kafkajs fetches it again from there: routed with the next join's token.
  await within(kafka.batch('t', 0, [message(0), message(1)]), 5000, 'the batch fetched again');
  await until('the batch routed', () => routed.length === 2);
  assert.deepEqual(routed, [
    { offset: '0', fence: 2 },
    { offset: '1', fence: 2 },
  ]);
  await stopSettling(kafka, consumer);
});

test('a fenced batch consumer should drop the queued batches of a partition its next join no longer holds, and route it again from the committed offset when given it back', async () => {
  const kafka = fakeKafka();
  const routed: { offset: string; fence: number | undefined }[] = [];
  const gate = deferred();
  let issued = 0;
  const consumer = createEventConsumer({
    kafka: kafka.client,
    groupId: 'g',
    topics: ['t'],
    logger: createLogger('consumer-test', 'silent'),
    dlqProducer: {} as EventProducer,
    startAt: 'earliest',
    commitIntervalMs: 0,
    onEvent: () => Promise.resolve(),
    onBatch: async (items) => {
      await gate.promise;
      routed.push(...items.map((i) => ({ offset: i.meta.offset, fence: i.meta.fence })));
    },
    fenceTokens: () => Promise.resolve((issued += 1)),
  });
  await consumer.begin();
  kafka.group.describe = () => Promise.resolve(stableGroup('m1', { t: [0] }));
  kafka.join('m1', { t: [0] });
  // The first batch waits in the handler; the second one waits behind it.
  await within(kafka.batch('t', 0, [message(0)]), 5000, 'the first batch returning');
  const second = kafka.batch('t', 0, [message(1)]);
  // The partition goes to another member, then comes back: both joins drop what was queued.
  kafka.group.describe = () => Promise.resolve(stableGroup('m1', {}));
  kafka.join('m1', {});
  kafka.group.describe = () => Promise.resolve(stableGroup('m1', { t: [0] }));
  kafka.join('m1', { t: [0] });
  gate.resolve();
  await within(second, 5000, 'the second batch returning');
  // kafkajs fetches it again from the committed offset (nothing committed: 0); nothing is filtered out as queued.
  await within(kafka.batch('t', 0, [message(0), message(1)]), 5000, 'the partition fetched again');
  await until('the partition routed again', () => routed.length === 3);
  assert.deepEqual(routed, [
    { offset: '0', fence: 1 },
    { offset: '0', fence: 3 },
    { offset: '1', fence: 3 },
  ]);
  await stopSettling(kafka, consumer);
});

test('a consumer stopped while kafkajs restarts it after a crash should wait for the rejoin, then leave', async () => {
  const kafka = fakeKafka();
  const consumer = batchConsumer(kafka, () => Promise.resolve());
  await consumer.begin();
  kafka.join('m1', { t: [0] });
  // A retriable crash: kafkajs joins again by itself; a disconnect before that join leaves no member behind.
  kafka.crash(true);
  let stopped = false;
  const stopping = consumer.stop().then(() => (stopped = true));
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(stopped, false, 'stop did not wait for the rejoin');
  assert.equal(kafka.state.disconnects, 0);
  kafka.join('m2', { t: [0] });
  await within(stopping, 5000, 'stop after the rejoin');
  assert.equal(kafka.state.disconnects, 1);
});
