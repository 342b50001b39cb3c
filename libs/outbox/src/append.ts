import type { RawSql } from '@ripple/db';
import type { OutboxMessage } from '@ripple/events';

/** Writes one event into the outbox within the caller's transaction (sql/outbox.sql). */
export async function appendToOutbox(tx: RawSql, message: OutboxMessage): Promise<void> {
  await tx.$executeRaw`
    INSERT INTO outbox (event_id, topic, key, shard, value, headers)
    VALUES (${message.eventId}::uuid, ${message.topic}, ${message.key}, ${message.shard}, ${message.value},
            ${JSON.stringify(message.headers)}::jsonb)`;
}
