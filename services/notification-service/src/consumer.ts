import { Topics } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import { createEventConsumer, createKafkaAdmin, dlqTopicOf, ensureTopics, registerConsumerLag } from '@ripple/kafka';
import type { ConsumedMeta, EventConsumer, EventProducer, KafkaClient } from '@ripple/kafka';
import { recordingEvents } from '@ripple/service';
import type { ApiDeps, TraceContext } from '@ripple/service';
import { headerValue } from '@ripple/telemetry';
import type { Logger, Registry } from '@ripple/telemetry';
import type { Db, Tx } from './db.js';
import { Notifier } from './notifier.js';

/** The topics notification-service reads. */
export const SOURCE_TOPICS = [Topics.post, Topics.chat] as const;

export function traceFromHeaders(headers: ConsumedMeta['headers']): TraceContext {
  const traceparent = headerValue(headers, 'traceparent');
  const tracestate = headerValue(headers, 'tracestate');
  return { ...(traceparent !== undefined && { traceparent }), ...(tracestate !== undefined && { tracestate }) };
}

/**
 * Handles one consumed event. Its id is recorded in `processed_events` in the same transaction
 * as the notifications and their outbox events, so a redelivered event changes nothing: delivery
 * is at least once, the effect exactly once. Returns the users whose notifications changed.
 */
export async function handleEvent(
  deps: ApiDeps<Db, Tx>,
  event: AnyEvent,
  trace: TraceContext = {},
): Promise<Set<string>> {
  // One unit of work: the wake after the commit carries the ids of the events it wrote.
  return recordingEvents(async () => {
    const touched = await deps.transaction(async (tx) => {
      const fresh = await tx.$executeRaw`
        INSERT INTO processed_events (event_id) VALUES (${event.id}) ON CONFLICT DO NOTHING`;
      if (fresh === 0) return new Set<string>();
      return new Notifier(tx, deps.emit, deps.now(), trace).apply(event);
    });
    if (touched.size > 0) deps.wakeOutbox();
    return touched;
  });
}

/** Consumes post and chat events (at least once) into `handleEvent`. */
export function startNotificationConsumer(opts: {
  deps: ApiDeps<Db, Tx>;
  kafka: KafkaClient;
  producer: EventProducer;
  logger: Logger;
  topicPrefix: string;
  groupId: string;
  partitions: number;
  replicationFactor: number;
  sessionTimeoutMs?: number;
  metrics: Registry;
}): Pick<EventConsumer, 'begin' | 'start' | 'stop'> {
  const { deps } = opts;
  const topics = SOURCE_TOPICS.map((t) => opts.topicPrefix + t);
  const consumer = createEventConsumer({
    kafka: opts.kafka,
    groupId: opts.groupId,
    topics,
    logger: opts.logger.child({ component: 'consumer' }),
    dlqProducer: opts.producer,
    // A new deployment catches up on everything the topics still hold.
    startAt: 'earliest',
    metrics: opts.metrics,
    ...(opts.sessionTimeoutMs !== undefined && { sessionTimeoutMs: opts.sessionTimeoutMs }),
    onEvent: async (event, meta) => {
      await handleEvent(deps, event, traceFromHeaders(meta.headers));
    },
  });
  const admin = createKafkaAdmin(opts.kafka);
  registerConsumerLag(opts.metrics, admin, opts.groupId, topics, opts.logger);
  const prepare = async () => {
    await admin.connect();
    // Producers may start later: the topics (and their dead-letter topics) are created here too.
    await ensureTopics(
      opts.kafka,
      [...topics, ...topics.map(dlqTopicOf)].map((topic) => ({
        topic,
        numPartitions: opts.partitions,
        replicationFactor: opts.replicationFactor,
      })),
    );
  };
  return {
    async begin() {
      await prepare();
      return consumer.begin();
    },
    async start() {
      await prepare();
      await consumer.start();
    },
    async stop() {
      await consumer.stop();
      await admin.disconnect();
    },
  };
}
