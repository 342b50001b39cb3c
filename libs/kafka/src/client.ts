import kafkajs from 'kafkajs';
import pRetry from 'p-retry';
import type { Kafka, LogEntry } from 'kafkajs';
import type { Logger } from '@ripple/telemetry';

const { Kafka: KafkajsKafka, logLevel } = kafkajs;

/**
 * A client for one cluster, as callers hold it: an opaque handle that every function of this
 * library takes. Which client library is behind it is libs/kafka's business (see README, "The
 * port"); nothing outside libs/kafka sees a kafkajs type.
 */
export interface KafkaClient {
  /** The client id the brokers see (logs, quotas). */
  readonly clientId: string;
}

const kafkajsClients = new WeakMap<KafkaClient, Kafka>();

/** The kafkajs client behind a handle. Internal to libs/kafka: not exported from index.ts. */
export function kafkajsOf(client: KafkaClient): Kafka {
  const kafka = kafkajsClients.get(client);
  if (kafka === undefined) throw new Error('not a KafkaClient made by createKafka');
  return kafka;
}

/** A kafkajs warning or error repeated within this window is logged at debug level. */
const REPEAT_WINDOW_MS = 60_000;

/**
 * kafkajs logs an error at every retry of every connection; while a broker is down that is
 * several lines a second. The same (label, message) is logged at its level at most once per
 * minute, the repeats at debug level; outages and recoveries are logged once by the connection
 * health of each client (see `connectionHealth` in @ripple/telemetry).
 */
function toPino(logger: Logger) {
  const lastLogged = new Map<string, number>();
  const repeated = (label: string, message: string): boolean => {
    const key = `${label}:${message}`;
    const now = Date.now();
    const last = lastLogged.get(key);
    if (last !== undefined && now - last < REPEAT_WINDOW_MS) return true;
    if (lastLogged.size > 1000) lastLogged.clear();
    lastLogged.set(key, now);
    return false;
  };
  return () =>
    ({ level, label, log }: LogEntry): void => {
      const { message, ...rest } = log;
      const fields = { kafka: label, ...rest };
      if ((level === logLevel.ERROR || level === logLevel.WARN) && repeated(label, message))
        logger.debug(fields, message);
      else if (level === logLevel.ERROR) logger.error(fields, message);
      else if (level === logLevel.WARN) logger.warn(fields, message);
      else if (level === logLevel.INFO) logger.debug(fields, message);
      else logger.trace(fields, message);
    };
}

/**
 * kafkajs' retry for every request, consumer restart and connection of our clients. The
 * backoff doubles from 200 ms but is capped at 500 ms (kafkajs' default cap is 30 s, which left
 * consumers idle up to ~24 s after a broker came back): after an outage of any length, the next
 * attempt is at most ~0.5 s away. A request gives up after 15 attempts (~7 s against a broker
 * that refuses connections), so a producer's `send` rejects and the outbox relay retries it
 * later; a consumer that gives up is restarted by kafkajs after the capped delay, forever.
 */
const KAFKA_RETRY = { initialRetryTime: 200, maxRetryTime: 500, retries: 15 } as const;

/** A kafkajs client whose logs go through our structured logger. */
export function createKafka(opts: { brokers: string[]; clientId: string; logger: Logger }): KafkaClient {
  const kafka = new KafkajsKafka({
    clientId: opts.clientId,
    brokers: opts.brokers,
    logLevel: logLevel.INFO,
    logCreator: toPino(opts.logger),
    retry: { ...KAFKA_RETRY },
  });
  return handleOf(kafka, opts.clientId);
}

/** The handle of a kafkajs client (internal to libs/kafka: its unit tests hand in stand-ins). */
export function handleOf(kafka: Kafka, clientId: string): KafkaClient {
  const client: KafkaClient = Object.freeze({ clientId });
  kafkajsClients.set(client, kafka);
  return client;
}

export interface TopicSpec {
  readonly topic: string;
  readonly numPartitions: number;
  readonly replicationFactor: number;
  /** `retention.ms`; the broker default when absent. */
  readonly retentionMs?: number;
  /** `max.message.bytes`, the largest record batch the topic takes; the broker's default when absent. */
  readonly maxMessageBytes?: number;
}

/**
 * How long `ensureTopics` keeps at it while the broker answers with retriable errors: 10 retries,
 * 100 ms doubling to 1 s (~6 s in all).
 */
const TOPIC_RETRY = { retries: 10, minTimeout: 100, maxTimeout: 1000 } as const;

/** A kafkajs error that says "try again" (its protocol errors carry `retriable`). */
function retriable(error: unknown): boolean {
  return (error as { retriable?: unknown }).retriable === true;
}

/**
 * Creates the topics that do not exist yet (partitions and replication always explicit) and
 * resolves once every partition of every topic in `specs` has a leader. A retriable broker
 * answer (a new topic's metadata not on the broker yet: "This server does not host this
 * topic-partition", no leader elected yet) is retried with `retry`'s backoff (p-retry options,
 * default `TOPIC_RETRY`); kafkajs' own wait for leaders retried only the second kind, and a
 * service failed to start on the first on a loaded machine. Rejects with the broker's error when
 * it is not retriable or the retries ran out.
 */
export async function ensureTopics(
  client: KafkaClient,
  specs: readonly TopicSpec[],
  retry: { retries: number; minTimeout: number; maxTimeout: number } = TOPIC_RETRY,
): Promise<void> {
  const admin = kafkajsOf(client).admin();
  await admin.connect();
  try {
    await pRetry(
      async () => {
        const existing = new Set(await admin.listTopics());
        const missing = specs.filter((s) => !existing.has(s.topic));
        if (missing.length > 0) {
          await admin.createTopics({
            waitForLeaders: false,
            topics: missing.map((s) => ({
              topic: s.topic,
              numPartitions: s.numPartitions,
              replicationFactor: s.replicationFactor,
              configEntries: [
                ...(s.retentionMs === undefined ? [] : [{ name: 'retention.ms', value: String(s.retentionMs) }]),
                ...(s.maxMessageBytes === undefined
                  ? []
                  : [{ name: 'max.message.bytes', value: String(s.maxMessageBytes) }]),
              ],
            })),
          });
        }
        if (specs.length === 0) return;
        const { topics } = await admin.fetchTopicMetadata({ topics: specs.map((s) => s.topic) });
        const leaderless = topics.filter((t) => t.partitions.length === 0 || t.partitions.some((p) => p.leader < 0));
        if (leaderless.length > 0) {
          throw Object.assign(new Error(`no leader yet for ${leaderless.map((t) => t.name).join(', ')}`), {
            retriable: true,
          });
        }
      },
      { ...retry, shouldRetry: ({ error }) => retriable(error) },
    );
  } finally {
    await admin.disconnect();
  }
}

/**
 * How long `deleteGroups` keeps at it: 15 retries, 250 ms doubling to 3 s (~40 s in all, past a
 * killed member's session timeout of 30 s).
 */
const GROUP_RETRY = { retries: 15, minTimeout: 250, maxTimeout: 3000 } as const;

/**
 * Deletes every consumer group whose id `ours` accepts (tests and benchmarks clean up after
 * themselves); resolves at once when there is none. A group can be deleted only once it is empty,
 * and a member that did not leave (a killed consumer) holds it until its session times out, so a
 * refusal is retried with `retry`'s backoff (p-retry options, default ~40 s in all). Rejects with
 * the broker's last refusal when retries ran out.
 */
export async function deleteGroups(
  client: KafkaClient,
  ours: (groupId: string) => boolean,
  retry: { retries: number; minTimeout: number; maxTimeout: number } = GROUP_RETRY,
): Promise<void> {
  const admin = kafkajsOf(client).admin();
  await admin.connect();
  try {
    await pRetry(async () => {
      const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter(ours);
      if (groups.length > 0) await admin.deleteGroups(groups);
    }, retry);
  } finally {
    await admin.disconnect();
  }
}

/** Deletes topics (tests clean up after themselves). Missing topics are ignored. */
export async function deleteTopics(client: KafkaClient, topics: readonly string[]): Promise<void> {
  const admin = kafkajsOf(client).admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const present = topics.filter((t) => existing.has(t));
    if (present.length > 0) await admin.deleteTopics({ topics: present });
  } finally {
    await admin.disconnect();
  }
}
