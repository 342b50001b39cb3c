import type { Admin, Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import { decodeEvent } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import { RippleError, isRippleError } from '@ripple/errors';
import {
  Counter,
  Gauge,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  connectionHealth,
  context,
  contextFromHeaders,
  trace,
  tracer,
} from '@ripple/telemetry';
import type { Logger, MessageHeaders, Registry } from '@ripple/telemetry';
import { consumerLag } from './admin.js';
import type { KafkaAdmin } from './admin.js';
import { kafkajsOf } from './client.js';
import type { KafkaClient } from './client.js';
import type { EventProducer } from './producer.js';
import { AssignmentFence, fencedBatch, isFencedBatch } from './fencing.js';
import type { GroupJoin } from './fencing.js';

export interface ConsumedMeta {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly headers: MessageHeaders | undefined;
  /**
   * With `fenceTokens` (batch mode): the fencing token of the group join under which this consumer
   * was handed the message's partition; a later owner of the partition has a greater one.
   */
  readonly fence?: number;
}

/** A valid event with where it came from. */
export interface ConsumedEvent {
  readonly event: AnyEvent;
  readonly meta: ConsumedMeta;
}

export interface EventConsumerOptions {
  readonly kafka: KafkaClient;
  readonly groupId: string;
  /** Deployed topic names. */
  readonly topics: readonly string[];
  readonly logger: Logger;
  /** Producer used to write poison messages to `<topic>.dlq` (the topic must exist). */
  readonly dlqProducer: EventProducer;
  /**
   * Where a group starts on partitions it never committed: `earliest`, or `latest` (a new group
   * skips what is already there). With `latest`, the group's offsets are committed at the current
   * end before the first member joins, so a partition whose first owner dies before committing
   * is resumed by the next owner instead of being skipped.
   */
  readonly startAt?: 'earliest' | 'latest';
  /** How long the group waits for a silent member before giving its partitions to others. */
  readonly sessionTimeoutMs?: number;
  /**
   * How long, in ms, a rebalance waits for the group's known members to rejoin before it goes on
   * without them (kafkajs default 60000). After a broker restart the group still lists the
   * members from before, which kafkajs replaced with new member ids when it restarted them: the
   * first join waits for them until this or the session timeout. Lower resumes faster; a member
   * busy longer than this (a slow handler) misses the rebalance and costs another one.
   */
  readonly rebalanceTimeoutMs?: number;
  /** Attempts for a handler that keeps failing with a retriable error before it is dead-lettered. */
  readonly maxAttempts?: number;
  /** First retry delay; doubles per attempt up to `maxBackoffMs`. */
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  /** How many recent event ids to remember, to skip redelivered duplicates (0 disables). */
  readonly dedupeWindow?: number;
  /**
   * Handles one valid event; must be idempotent by event id (delivery is at least once).
   * Resolving lets its offset be committed. Rejecting with a non-retriable RippleError
   * dead-letters the message; any other rejection is retried with backoff.
   */
  readonly onEvent: (event: AnyEvent, meta: ConsumedMeta) => Promise<void>;
  /**
   * With this, messages are consumed in batches: the valid, new events of one fetched batch of a
   * partition are handed over at once, in offset order, and their offsets are committed when it
   * resolves. While one batch of a partition is handled, its next batch is fetched (and waits its
   * turn): a partition has at most two batches in the process, and its batches are handed over
   * one after the other, never at once. After a rebalance, the batches still being handled of a
   * partition this consumer keeps may be fetched and handed over again (at least once). A batch that fails with a non-retriable error, or keeps failing, is handled again
   * one event at a time with `onEvent`, so only a poison event is dead-lettered. Each event gets a
   * `process <topic>` consumer span (parent: the trace context in its headers); the handler runs
   * in the context of the first one. `control.keepAlive` keeps the group session alive while the
   * handler waits on something slow (backpressure): see `BatchControl`.
   */
  readonly onBatch?: (events: readonly ConsumedEvent[], control: BatchControl) => Promise<void>;
  /** Partitions handled at the same time in batch mode (kafkajs `partitionsConsumedConcurrently`). */
  readonly partitionsConsumedConcurrently?: number;
  /**
   * Batch mode: the offsets of handled batches are committed at most this often (ms; default
   * 1000), and at once when the consumer stops or its group starts a rebalance, instead of after
   * every batch: a commit is a round trip to the group coordinator, and kafkajs fetches again only
   * once every partition's `eachBatch` returned. Only offsets whose batch resolved are ever
   * committed; after a crash, up to this long's worth of events is handed over again (delivery is
   * at least once either way).
   */
  readonly commitIntervalMs?: number;
  /** Counts outcomes in `events_consumed_total` by topic, event type and outcome. */
  readonly metrics?: Registry;
  /**
   * Batch mode: issues fencing tokens for this group (each greater than every one issued before,
   * e.g. @ripple/registry `FenceTokens.next(groupId)`). With it, each group join gets a token,
   * confirmed with the group coordinator (see `AssignmentFence`), and every event handed over
   * carries its join's token in `meta.fence`, for the handler to fence its side effects with (a
   * store that refuses lower tokens than it saw). A batch whose join could not be confirmed, or
   * whose handler rejects with `fencedBatch(...)`, is dropped: neither retried, dead-lettered nor
   * committed; the consumer rejoins (kafkajs does at its next heartbeat, as the group moved on)
   * and the partition's owner fetches it again from the committed offset. At each join, the
   * batches still queued of a partition this consumer no longer holds (or of every partition, when
   * its member id changed: it was dropped from the group) are dropped too, with their offsets not
   * committed yet.
   */
  readonly fenceTokens?: () => Promise<number>;
}

/** What a batch handler may ask of the consumer while it handles a batch. */
export interface BatchControl {
  /**
   * Heartbeats the consumer group (kafkajs sends one at most every heartbeat interval, so call it
   * as often as you like): a handler that waits longer than the session timeout (e.g. for sockets
   * to drain) calls it meanwhile so the group does not evict this member. Never rejects: a
   * heartbeat that finds the group rebalancing commits what was handled, and kafkajs rejoins once
   * the batch is done.
   */
  keepAlive(): void;
}

/** Wait before a fresh consumer replaces one that kafkajs would not restart. */
const RELAUNCH_DELAY_MS = 1000;
/**
 * Longest `stop` waits for a join in flight, in ms. A join ends with its rebalance, which waits
 * for the members to rejoin up to the largest rebalance timeout among them (not this consumer's
 * own): a fixed bound, under the 30 s a process gets to shut down (`runProcess`) with room for
 * the rest of its shutdown. A join still running after it is cut short, and the member it leaves
 * behind expires with its session.
 */
const JOIN_WAIT_MS = 15_000;

const stoppedError = () => new Error('the consumer was stopped before it joined its group');

/** Resolves when `promise` settles or after `ms`, whichever comes first; never rejects. */
async function settledWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    promise.catch(() => undefined),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
}
/** Most events handed to `onBatch` at once (a fetched batch can hold thousands). */
const MAX_BATCH_EVENTS = 500;

type Outcome = 'handled' | 'duplicate' | 'retried' | 'dead-lettered' | 'fenced';

export interface EventConsumer {
  /**
   * Resolves once the consumer joined its group and is fetching; while Kafka does not answer it
   * keeps trying (every second), so it may take as long as the outage. Rejects when `stop` comes
   * first and the start does not join while `stop` waits for it (with the stop, or with what
   * failed: a broker that does not answer).
   */
  start(): Promise<void>;
  /**
   * Like `start`, but resolves as soon as the group's starting offsets are settled and the
   * consumer is connected and subscribed, with `joined`, which resolves at its first group join.
   * The join waits for a rebalance: until every known member rejoined or the rebalance timeout
   * passed, again for each member that missed it, which busy members do. A process that serves
   * without owning partitions (a gateway node) must not wait for it. Call `begin` or `start` once.
   * Rejects when `stop` is called before the consumer ran (it then never joins); `joined` never
   * settles when `stop` comes before the first join.
   */
  begin(): Promise<{ joined: Promise<void> }>;
  /**
   * Finishes the message in flight, commits what is done and leaves the group. A start or join
   * in flight (a first join, or kafkajs rejoining after a crash) is waited for first, at most 15 s
   * (the rebalance it ends with may wait as long for other members), since only a member that
   * joined can leave; a consumer still connecting or reading its group's offsets finishes that,
   * is disconnected, and never joins.
   */
  stop(): Promise<void>;
}

export function dlqTopicOf(topic: string): string {
  return `${topic}.dlq`;
}

function describe(err: unknown): { code: string; message: string; retriable: boolean } {
  if (isRippleError(err)) return { code: err.code, message: err.message, retriable: err.retriable };
  return { code: 'HANDLER_FAILED', message: err instanceof Error ? err.message : String(err), retriable: true };
}

/** The key of a topic's partition in the batch consumer's maps. */
function laneKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

/** Remembers the last `size` ids (insertion order), to drop redelivered duplicates cheaply. */
class RecentIds {
  private readonly ids = new Set<string>();
  constructor(private readonly size: number) {}
  has(id: string): boolean {
    return this.ids.has(id);
  }
  add(id: string): void {
    if (this.size === 0) return;
    this.ids.add(id);
    if (this.ids.size > this.size) {
      const oldest = this.ids.values().next().value;
      if (oldest !== undefined) this.ids.delete(oldest);
    }
  }
}

/**
 * Consumes events one message at a time; an offset is committed only after its handler resolved
 * (at-least-once). Retriable failures are retried with backoff on the same message (the
 * partition waits, keeping order); invalid messages, non-retriable failures and handlers that
 * give up go to `<topic>.dlq` with the reason, and the partition moves on.
 */
export function createEventConsumer(opts: EventConsumerOptions): EventConsumer {
  const sessionTimeout = opts.sessionTimeoutMs ?? 30_000;
  const newConsumer = (): Consumer =>
    kafkajsOf(opts.kafka).consumer({
      groupId: opts.groupId,
      allowAutoTopicCreation: false,
      sessionTimeout,
      // A member notices a rebalance at its next heartbeat, sent between fetches: with a short
      // rebalance timeout, fetches must not long-poll for longer than a fraction of it.
      ...(opts.rebalanceTimeoutMs !== undefined && {
        rebalanceTimeout: opts.rebalanceTimeoutMs,
        maxWaitTimeInMs: Math.min(5000, Math.floor(opts.rebalanceTimeoutMs / 4)),
      }),
      heartbeatInterval: Math.max(500, Math.floor(sessionTimeout / 10)),
    });
  let consumer: Consumer = newConsumer();
  const health =
    opts.metrics &&
    connectionHealth({
      logger: opts.logger,
      metrics: opts.metrics,
      client: 'kafkajs',
      connection: `consumer:${opts.groupId}`,
    });
  const maxAttempts = opts.maxAttempts ?? 8;
  const initialBackoffMs = opts.initialBackoffMs ?? 100;
  const maxBackoffMs = opts.maxBackoffMs ?? 5000;
  const recent = new RecentIds(opts.dedupeWindow ?? 10_000);
  let stopping = false;
  const consumed =
    opts.metrics &&
    new Counter({
      name: 'events_consumed_total',
      help: 'Events consumed, by topic, event type and outcome (handled, duplicate, retried, dead-lettered, fenced)',
      labelNames: ['topic', 'type', 'outcome'],
      registers: [opts.metrics],
    });
  const count = (outcome: Outcome, meta: ConsumedMeta, type = 'invalid') =>
    consumed?.inc({ topic: meta.topic, type, outcome });

  async function deadLetter(meta: ConsumedMeta, message: KafkaMessage, err: unknown, type?: string): Promise<void> {
    const { code, message: reason } = describe(err);
    opts.logger.error(
      { topic: meta.topic, partition: meta.partition, offset: meta.offset, code, reason },
      'message dead-lettered',
    );
    await opts.dlqProducer.send([
      {
        topic: dlqTopicOf(meta.topic),
        key: message.key?.toString('utf8') ?? '',
        value: message.value?.toString('utf8') ?? '',
        headers: {
          dlq_error_code: code,
          dlq_error_message: reason,
          dlq_source_topic: meta.topic,
          dlq_source_partition: String(meta.partition),
          dlq_source_offset: meta.offset,
        },
      },
    ]);
    count('dead-lettered', meta, type);
  }

  /**
   * The `process <topic>` span of one consumed event, a child of the producer's span (the message's
   * `traceparent` header). libs/kafka makes its consumer and producer spans itself, so no
   * instrumentation patches the Kafka client (whose replacement is then one adapter).
   */
  function processSpan(event: AnyEvent, meta: ConsumedMeta) {
    return tracer().startSpan(
      `process ${meta.topic}`,
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'messaging.system': 'kafka',
          'messaging.operation.type': 'process',
          'messaging.destination.name': meta.topic,
          'messaging.destination.partition.id': String(meta.partition),
          'messaging.kafka.offset': meta.offset,
          'cloudevents.event_id': event.id,
          'cloudevents.event_type': event.type,
        },
      },
      contextFromHeaders(meta.headers, ROOT_CONTEXT),
    );
  }

  async function handle(event: AnyEvent, meta: ConsumedMeta, message: KafkaMessage, heartbeat: () => Promise<void>) {
    const span = processSpan(event, meta);
    try {
      await context.with(trace.setSpan(ROOT_CONTEXT, span), () => handleIn(event, meta, message, heartbeat));
    } catch (err) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: describe(err).message });
      throw err;
    } finally {
      span.end();
    }
  }

  async function handleIn(event: AnyEvent, meta: ConsumedMeta, message: KafkaMessage, heartbeat: () => Promise<void>) {
    let backoff = initialBackoffMs;
    for (let attempt = 1; ; attempt++) {
      try {
        await opts.onEvent(event, meta);
        recent.add(event.id);
        count('handled', meta, event.type);
        return;
      } catch (err) {
        if (isFencedBatch(err)) throw err;
        const problem = describe(err);
        if (!problem.retriable) return deadLetter(meta, message, err, event.type);
        if (attempt >= maxAttempts || stopping) {
          if (stopping) throw err; // not committed: the next owner of the partition retries it
          const gaveUp = new RippleError(
            'HANDLER_GAVE_UP',
            `${problem.code} after ${attempt} attempts: ${problem.message}`,
          );
          return deadLetter(meta, message, gaveUp, event.type);
        }
        opts.logger.warn(
          { ...meta, headers: undefined, attempt, code: problem.code, retryInMs: backoff },
          'handler failed; retrying',
        );
        count('retried', meta, event.type);
        await new Promise((r) => setTimeout(r, backoff));
        await heartbeat();
        backoff = Math.min(backoff * 2, maxBackoffMs);
      }
    }
  }

  /**
   * Hands `items` (one partition's, in offset order) to `onBatch`, retrying retriable failures with
   * backoff; falls back to one event at a time when the batch cannot succeed.
   */
  async function handleBatch(
    onBatch: NonNullable<EventConsumerOptions['onBatch']>,
    items: readonly (ConsumedEvent & { message: KafkaMessage })[],
    heartbeat: () => Promise<void>,
  ): Promise<void> {
    let backoff = initialBackoffMs;
    const control: BatchControl = { keepAlive: () => void heartbeat().catch(() => undefined) };
    for (let attempt = 1; ; attempt++) {
      const spans = items.map(({ event, meta }) => processSpan(event, meta));
      try {
        const first = spans[0];
        await context.with(first ? trace.setSpan(context.active(), first) : context.active(), () =>
          onBatch(items, control),
        );
        for (const { event, meta } of items) {
          recent.add(event.id);
          count('handled', meta, event.type);
        }
        return;
      } catch (err) {
        // Fenced: a later owner of the partition handles it (a refusal, not an error of the spans).
        if (isFencedBatch(err)) {
          for (const { event, meta } of items) count('fenced', meta, event.type);
          throw err;
        }
        for (const span of spans) span.setStatus({ code: SpanStatusCode.ERROR, message: describe(err).message });
        const problem = describe(err);
        if (stopping) throw err; // not committed: the next owner of the partition retries it
        if (!problem.retriable || attempt >= maxAttempts) {
          for (const { event, meta, message } of items) await handle(event, meta, message, heartbeat);
          return;
        }
        opts.logger.warn(
          { attempt, code: problem.code, events: items.length, retryInMs: backoff },
          'batch failed; retrying',
        );
        for (const { event, meta } of items) count('retried', meta, event.type);
        await new Promise((r) => setTimeout(r, backoff));
        await heartbeat();
        backoff = Math.min(backoff * 2, maxBackoffMs);
      } finally {
        for (const span of spans) span.end();
      }
    }
  }

  // Batch mode overlaps fetching with routing: `eachBatch` hands its batch to the partition's lane
  // (its batches run one after the other, in offset order) and returns once the batch before it
  // is done, so kafkajs fetches the next batch while this one is being handled, and at most two
  // batches of a partition are in the process at once. kafkajs fetches from the offsets resolved
  // with `resolveOffset`, which a queued batch therefore resolves at once; what may be committed is
  // kept apart (`routed`): only offsets whose batch was handled, committed on an interval (see
  // `commitIntervalMs`). A commit is a round trip to the group coordinator (tens of ms on a busy
  // broker, and heartbeats queue behind it): batches never wait for one, except when the consumer
  // stops. One commit at a time, so a later one never lands before an earlier one.
  const commitIntervalMs = opts.commitIntervalMs ?? 1000;
  /** Per `topic:partition`: the next offset to read after what was handled, not committed yet. */
  const routed = new Map<string, { topic: string; partition: number; offset: string }>();
  /** Commits explicit offsets through the kafkajs consumer of the latest batch. */
  let commitVia: EachBatchPayload['commitOffsetsIfNecessary'] | undefined;
  let commitInFlight: Promise<void> | undefined;
  let commitTimer: NodeJS.Timeout | undefined;
  let lastCommit = Date.now();
  async function commitNow(): Promise<void> {
    if (commitTimer) clearTimeout(commitTimer);
    commitTimer = undefined;
    while (commitInFlight) await commitInFlight.catch(() => undefined);
    lastCommit = Date.now();
    const offsets = [...routed.values()];
    if (offsets.length === 0 || !commitVia) return;
    const byTopic = new Map<string, { partition: number; offset: string }[]>();
    for (const { topic, partition, offset } of offsets) {
      const list = byTopic.get(topic);
      if (list) list.push({ partition, offset });
      else byTopic.set(topic, [{ partition, offset }]);
    }
    commitInFlight = commitVia({ topics: [...byTopic].map(([topic, partitions]) => ({ topic, partitions })) });
    try {
      await commitInFlight;
      // What was handled meanwhile stays for the next commit; a failed one's offsets ride with it.
      for (const o of offsets)
        if (routed.get(laneKey(o.topic, o.partition)) === o) routed.delete(laneKey(o.topic, o.partition));
    } finally {
      commitInFlight = undefined;
    }
  }
  const commitQuietly = (when: string) =>
    commitNow().catch((err: unknown) =>
      opts.logger.debug({ err, when }, 'offset commit failed; the next one carries them'),
    );

  /**
   * After a batch was handled up to `offset` (inclusive): records it as committable, then starts a
   * commit when the interval is over (without waiting for it), else soon; when stopping, commits
   * before returning.
   */
  async function handled(topic: string, partition: number, offset: string): Promise<void> {
    const next = String(BigInt(offset) + 1n);
    routed.set(laneKey(topic, partition), { topic, partition, offset: next });
    const lane = lanes.get(laneKey(topic, partition));
    if (lane) lane.next = next;
    const due = lastCommit + commitIntervalMs - Date.now();
    if (stopping) await commitNow();
    else if (due <= 0 && !commitInFlight) void commitQuietly('interval');
    else commitTimer ??= setTimeout(() => void commitQuietly('interval'), Math.max(0, due));
  }

  /**
   * Each partition's batches, one after the other: `tail` settles when the last queued one is done
   * (it never rejects), `generation` moves on when the partition's fetch position is reset,
   * `next` is the offset after the last handled message and `queued` the last offset queued.
   */
  const lanes = new Map<
    string,
    { topic: string; partition: number; tail: Promise<void>; generation: number; next?: string; queued?: bigint }
  >();
  const fence =
    opts.fenceTokens &&
    new AssignmentFence({ next: opts.fenceTokens, logger: opts.logger, retryMs: RELAUNCH_DELAY_MS });

  /**
   * With fencing, at each group join: the lanes of partitions this consumer no longer holds (all of
   * them when its member id changed: the group dropped it, and others may have held any of them
   * since) drop their queued batches and forget what they queued, so that a partition assigned
   * again is fetched again from the committed offset, and their handled offsets are not committed.
   */
  function joined(join: GroupJoin, previous: GroupJoin | undefined): void {
    const rejoined = previous !== undefined && previous.memberId !== join.memberId;
    for (const [key, lane] of lanes) {
      if (!rejoined && join.holds(lane.topic, lane.partition)) continue;
      lane.generation += 1;
      lane.queued = undefined;
      lane.next = undefined;
      routed.delete(key);
    }
  }
  /** Resets a partition's fetch position after a failed batch: kafkajs fetches it again from there. */
  let seek: (topic: string, partition: number, offset: string) => void = () => undefined;

  /**
   * Handles one fetched batch of a partition: runs of valid events go to `onBatch` at once, invalid
   * messages to the DLQ in order; records what was handled for the next commit. Resolves true
   * when it went through every message, false when it was cut short.
   */
  async function handleFetched(
    onBatch: NonNullable<EventConsumerOptions['onBatch']>,
    payload: EachBatchPayload,
    messages: readonly KafkaMessage[],
    heartbeat: () => Promise<void>,
    token: number | undefined,
  ): Promise<boolean> {
    const { batch } = payload;
    let run: (ConsumedEvent & { message: KafkaMessage })[] = [];
    let last: string | undefined;
    const flush = async (): Promise<void> => {
      if (run.length > 0) await handleBatch(onBatch, run, heartbeat);
      run = [];
      if (last !== undefined) await handled(batch.topic, batch.partition, last);
    };
    let whole = true;
    for (const message of messages) {
      if (stopping || !payload.isRunning() || payload.isStale()) {
        whole = false;
        break;
      }
      const meta: ConsumedMeta = {
        topic: batch.topic,
        partition: batch.partition,
        offset: message.offset,
        headers: message.headers,
        ...(token !== undefined && { fence: token }),
      };
      let event: AnyEvent;
      try {
        event = decodeEvent(message.value);
      } catch (err) {
        await flush();
        await deadLetter(meta, message, err);
        last = message.offset;
        await handled(batch.topic, batch.partition, last);
        continue;
      }
      last = message.offset;
      if (recent.has(event.id)) count('duplicate', meta, event.type);
      else run.push({ event, meta, message });
      if (run.length >= MAX_BATCH_EVENTS) await flush();
    }
    await flush();
    return whole;
  }

  /**
   * The token of the join a batch of `topic`/`partition` was fetched under; rejects with
   * `fencedBatch` when there is none (fetched before any join), the join did not assign the
   * partition, or it could not be confirmed (the group moved on).
   */
  async function fenceOf(join: GroupJoin | undefined, topic: string, partition: number): Promise<number> {
    const token = join?.holds(topic, partition) ? await join.token : undefined;
    if (token === undefined) throw fencedBatch(`no confirmed assignment of ${topic}/${partition}`);
    return token;
  }

  /**
   * kafkajs `eachBatch`: queues the batch in its partition's lane, moves kafkajs' fetch position past
   * it, and returns once the batch before it in the lane is done. A batch that fails (only while
   * stopping, or when the DLQ cannot be written) stops its lane: the batches queued behind it are
   * dropped, nothing past the last handled offset is committed, and the partition is fetched again
   * from there (seek).
   */
  async function eachBatch(onBatch: NonNullable<EventConsumerOptions['onBatch']>, payload: EachBatchPayload) {
    const { batch } = payload;
    if (stopping || payload.isStale() || batch.messages.length === 0) return;
    commitVia = (offsets) => payload.commitOffsetsIfNecessary(offsets);
    // A failed heartbeat means the group is rebalancing: commit what was handled before leaving it.
    const heartbeat = async () => {
      try {
        await payload.heartbeat();
      } catch (err) {
        await commitQuietly('rebalance');
        throw err;
      }
    };
    const key = laneKey(batch.topic, batch.partition);
    // The join this batch was fetched under (kafkajs joins again only after its batches were handed over).
    const join = fence?.current;
    const lane = lanes.get(key) ?? {
      topic: batch.topic,
      partition: batch.partition,
      tail: Promise.resolve(),
      generation: 0,
    };
    lanes.set(key, lane);
    // After a rebalance kafkajs fetches from the committed offsets again: what is queued here
    // already is not queued twice.
    const queued = lane.queued;
    const messages = queued === undefined ? batch.messages : batch.messages.filter((m) => BigInt(m.offset) > queued);
    const lastMessage = batch.messages[batch.messages.length - 1];
    if (lastMessage) payload.resolveOffset(lastMessage.offset);
    if (messages.length === 0) return;
    lane.queued = BigInt(messages[messages.length - 1]?.offset ?? '0');
    const { generation } = lane;
    const previous = lane.tail;
    lane.tail = previous.then(async () => {
      if (lane.generation !== generation) return; // fetched before the lane was reset
      try {
        const token = fence && (await fenceOf(join, batch.topic, batch.partition));
        // Cut short (stopping, kafkajs stopped or restarted this consumer, or a seek): whoever
        // stopped it set where kafkajs fetches next, and what was not handled must be queued again.
        if (!(await handleFetched(onBatch, payload, messages, heartbeat, token))) {
          lane.generation += 1;
          lane.queued = undefined;
        }
      } catch (err) {
        if (isFencedBatch(err)) {
          opts.logger.info(
            { topic: batch.topic, partition: batch.partition, events: messages.length, reason: (err as Error).message },
            'batch fenced: a later owner of the partition handles it',
          );
          // A join since that took the partition away reset the lane already: a later owner
          // fetches it from the committed offset, and so does this consumer if it gets it back.
          if (lane.generation !== generation) return;
          lane.generation += 1;
          lane.queued = undefined;
          // A later join of this consumer that kept the partition (its batch's join was superseded
          // before its token was confirmed): nobody else held it since, fetch it again from what
          // was handled, for that join's token. Otherwise the group moved on and kafkajs rejoins.
          const latest = fence?.current;
          const from = lane.next ?? messages[0]?.offset;
          if (latest && latest !== join && latest.holds(batch.topic, batch.partition) && from !== undefined)
            seek(batch.topic, batch.partition, from);
          return;
        }
        lane.generation += 1;
        lane.queued = undefined;
        if (stopping) return;
        opts.logger.warn({ err, topic: batch.topic, partition: batch.partition }, 'batch failed; fetching it again');
        const from = lane.next ?? batch.messages[0]?.offset;
        if (from !== undefined) seek(batch.topic, batch.partition, from);
      }
    });
    await previous;
    await heartbeat();
  }

  let relaunch: NodeJS.Timeout | undefined;

  /** Replaces the consumer with a fresh one after a delay, again and again until one runs. */
  function scheduleRelaunch(onJoin: () => void): void {
    relaunch = setTimeout(() => {
      relaunch = undefined;
      if (stopping) return;
      const old = consumer;
      consumer = newConsumer();
      void old.disconnect().catch(() => undefined);
      launch(onJoin)
        .then(({ running }) => running)
        .catch((err: unknown) => {
          health?.failed(err);
          scheduleRelaunch(onJoin);
        });
    }, RELAUNCH_DELAY_MS);
  }

  /**
   * What may be joining the group now: a start (`begin`: its offsets, connect and first join), a
   * launch (until its consumer joined, failed to, or found the consumer stopping before it ran),
   * and kafkajs restarting a consumer after a retriable crash (until it joined again). `stop` waits
   * for them, because kafkajs leaves the group only when it stops a consumer that has joined: one
   * disconnected while it joins stays a member until its session times out, and the partitions it
   * was given wait for it.
   */
  const joining = new Set<Promise<void>>();
  const trackJoin = (promise: Promise<unknown>): void => {
    const settled = promise.then(
      () => undefined,
      () => undefined,
    );
    joining.add(settled);
    void settled.then(() => joining.delete(settled));
  };
  /** Rejects `start` when the consumer is stopped before its first join (`joined` itself stays pending). */
  let signalStopped = (): void => undefined;
  const stoppedBeforeJoin = new Promise<never>((_, reject) => (signalStopped = () => reject(stoppedError())));
  stoppedBeforeJoin.catch(() => undefined);

  /**
   * Connects and subscribes one kafkajs consumer and starts it; `running` settles once it joined
   * the group (kafkajs' `run`) or failed to. `onJoin` is called at each group join. A consumer
   * stopped meanwhile is disconnected and not run (`running` resolves at once).
   */
  function launch(onJoin: () => void): Promise<{ running: Promise<void> }> {
    const attempt = launchOnce(onJoin);
    trackJoin(attempt.then(({ running }) => running));
    return attempt;
  }

  async function launchOnce(onJoin: () => void): Promise<{ running: Promise<void> }> {
    const current = consumer;
    /** Settles the rejoin kafkajs started after a retriable crash, if any. */
    let rejoined: (() => void) | undefined;
    current.on(current.events.GROUP_JOIN, ({ payload }) => {
      rejoined?.();
      rejoined = undefined;
      health?.recovered();
      if (fence) {
        const { join, previous } = fence.joined(payload.memberId, payload.memberAssignment, () =>
          current.describeGroup(),
        );
        joined(join, previous);
      }
      onJoin();
    });
    current.on(current.events.CRASH, (e) => {
      if (stopping) return;
      if (health) health.failed(e.payload.error, { restart: e.payload.restart });
      else opts.logger.warn({ err: e.payload.error, restart: e.payload.restart }, 'consumer crashed');
      // kafkajs restarts by itself after retriable errors (in at most the capped retry time);
      // after any other error it would stay down: start a fresh consumer instead.
      if (e.payload.restart) {
        if (!rejoined) trackJoin(new Promise<void>((resolve) => (rejoined = resolve)));
      } else {
        rejoined?.();
        rejoined = undefined;
        scheduleRelaunch(onJoin);
      }
    });
    await current.connect();
    await current.subscribe({ topics: [...opts.topics], fromBeginning: true });
    if (stopping) {
      // Stopped while it connected: `stop` may have disconnected it before the connect was done.
      await current.disconnect();
      return { running: Promise.resolve() };
    }
    const { onBatch } = opts;
    if (onBatch) {
      seek = (topic, partition, offset) => current.seek({ topic, partition, offset });
      // kafkajs may notice a rebalance in its own heartbeat first: commit then too (best effort).
      current.on(current.events.REBALANCING, () => void commitQuietly('rebalance'));
      const running = current.run({
        partitionsConsumedConcurrently: opts.partitionsConsumedConcurrently ?? 1,
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: (payload) => eachBatch(onBatch, payload),
      });
      return { running };
    }
    const running = current.run({
      eachMessage: async (payload) => {
        const { topic, partition, message } = payload;
        const meta: ConsumedMeta = { topic, partition, offset: message.offset, headers: message.headers };
        let event: AnyEvent;
        try {
          event = decodeEvent(message.value);
        } catch (err) {
          await deadLetter(meta, message, err);
          return;
        }
        if (recent.has(event.id)) {
          count('duplicate', meta, event.type);
          return;
        }
        await handle(event, meta, message, () => payload.heartbeat());
      },
    });
    return { running };
  }

  function begin(): Promise<{ joined: Promise<void> }> {
    const started = beginOnce();
    trackJoin(started);
    return started;
  }

  async function beginOnce(): Promise<{ joined: Promise<void> }> {
    let onJoin = (): void => undefined;
    const joined = new Promise<void>((resolve) => (onJoin = resolve));
    // Until the first launch works (Kafka may be down), retry with a fresh consumer each time.
    for (;;) {
      try {
        if ((opts.startAt ?? 'latest') === 'latest')
          await commitEndForNewGroup(opts.kafka, opts.groupId, opts.topics, opts.logger);
        const { running } = await launch(() => onJoin());
        if (stopping) throw stoppedError();
        // A join that fails is retried like any later crash: a fresh consumer after a delay.
        running.catch((err: unknown) => {
          if (stopping) return;
          if (health) health.failed(err, { during: 'start' });
          else opts.logger.warn({ err }, 'consumer could not join its group; retrying');
          scheduleRelaunch(() => onJoin());
        });
        return { joined };
      } catch (err) {
        if (stopping) throw err;
        if (health) health.failed(err, { during: 'start' });
        else opts.logger.warn({ err }, 'consumer could not start; retrying');
        const old = consumer;
        consumer = newConsumer();
        await old.disconnect().catch(() => undefined);
        await new Promise((r) => setTimeout(r, RELAUNCH_DELAY_MS));
        if (stopping) throw stoppedError();
      }
    }
  }

  return {
    begin,
    async start() {
      const { joined } = await begin();
      await Promise.race([joined, stoppedBeforeJoin]);
    },
    async stop() {
      stopping = true;
      if (relaunch) clearTimeout(relaunch);
      fence?.close();
      // A join in flight finishes first (it ends with its rebalance; at most JOIN_WAIT_MS), so that
      // the disconnect below leaves the group.
      if (joining.size > 0) await settledWithin(Promise.all(joining), JOIN_WAIT_MS);
      signalStopped();
      // The batches in flight finish what they started (or stop at a failure), then what was
      // handled is committed.
      await Promise.all([...lanes.values()].map((lane) => lane.tail));
      await commitQuietly('stop');
      await consumer.disconnect();
    },
  };
}

/**
 * Commits the current end of every partition the group has no offset for, so that it starts at
 * "now" once, and never skips events later. Skipped when the group is already active (another
 * member initialised it; the broker refuses offset changes for an active group).
 */
async function commitEndForNewGroup(
  client: KafkaClient,
  groupId: string,
  topics: readonly string[],
  logger: Logger,
): Promise<void> {
  const admin: Admin = kafkajsOf(client).admin();
  await admin.connect();
  try {
    const committed = await admin.fetchOffsets({ groupId, topics: [...topics] });
    for (const { topic, partitions } of committed) {
      const missing = new Set(partitions.filter((p) => p.offset === '-1').map((p) => p.partition));
      if (missing.size === 0) continue;
      const ends = await admin.fetchTopicOffsets(topic);
      // An empty partition starts at its end either way. Skipping those matters: setOffsets joins
      // the group with a temporary member, which costs a rebalance (seconds) per topic.
      const partitionsToSet = ends
        .filter((e) => missing.has(e.partition) && e.high !== e.low)
        .map((e) => ({ partition: e.partition, offset: e.high }));
      if (partitionsToSet.length === 0) continue;
      try {
        await admin.setOffsets({ groupId, topic, partitions: partitionsToSet });
      } catch (err) {
        logger.debug({ err, topic }, 'group already active; its members own the offsets');
      }
    }
  } finally {
    await admin.disconnect();
  }
}

/**
 * `kafka_consumer_lag_messages{group, topic, partition}`: how far the group's committed offsets
 * are behind the end of each partition, read from the broker when scraped.
 */
export function registerConsumerLag(
  registry: Registry,
  admin: KafkaAdmin,
  groupId: string,
  topics: readonly string[],
  logger: Logger,
): void {
  new Gauge({
    name: 'kafka_consumer_lag_messages',
    help: 'Messages of each partition the consumer group has not committed yet',
    labelNames: ['group', 'topic', 'partition'],
    registers: [registry],
    async collect() {
      this.reset();
      const lags = await consumerLag(admin, groupId, topics).catch((err: unknown) => {
        logger.warn({ err }, 'could not read the consumer lag');
        return [];
      });
      for (const l of lags) this.set({ group: groupId, topic: l.topic, partition: String(l.partition) }, l.lag);
    },
  });
}
