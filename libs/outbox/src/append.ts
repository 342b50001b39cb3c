import type { RawSql } from '@ripple/db';
import type { OutboxMessage } from '@ripple/events';

/** Writes one event into the outbox within the caller's transaction (sql/outbox.sql). */
export async function appendToOutbox(tx: RawSql, message: OutboxMessage): Promise<void> {
  await tx.$executeRaw`
    INSERT INTO outbox (event_id, topic, key, shard, value, headers)
    VALUES (${message.eventId}::uuid, ${message.topic}, ${message.key}, ${message.shard}, ${message.value},
            ${JSON.stringify(message.headers)}::jsonb)`;
}

/**
 * An outbox row's columns by name, for statements that write many rows from one JSON parameter
 * (`jsonb_to_recordset(...) AS t(..., event_id uuid, topic text, key text, shard int, value text,
 * headers jsonb)`), as the batched writes of the domain services do.
 */
export function outboxColumns(message: OutboxMessage): {
  event_id: string;
  topic: string;
  key: string;
  shard: number;
  value: string;
  headers: Record<string, string>;
} {
  return {
    event_id: message.eventId,
    topic: message.topic,
    key: message.key,
    shard: message.shard,
    value: message.value,
    headers: message.headers,
  };
}
