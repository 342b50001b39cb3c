import { PrismaPg } from '@prisma/adapter-pg';
import type { OutboxMessage } from '@ripple/events';
import type { OutboxRecord, OutboxStore } from '@ripple/kafka';
import { PrismaClient } from './generated/prisma/client.js';
import type { Post, PostStore } from './posts.js';

export type Db = PrismaClient;

export function createDb(databaseUrl: string): Db {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl }) });
}

export function prismaPostStore(db: Db): PostStore {
  return {
    async insertWithEvent(post: Post, event: OutboxMessage) {
      await db.$transaction([
        db.post.create({ data: post }),
        db.outboxEvent.create({
          data: {
            eventId: event.eventId,
            topic: event.topic,
            key: event.key,
            value: event.value,
            headers: event.headers,
          },
        }),
      ]);
    },
  };
}

interface OutboxRow {
  id: bigint;
  topic: string;
  key: string;
  value: string;
  headers: Record<string, string>;
}

/** The outbox seen by the relay: rows are locked while being published, so relays never share one. */
export function prismaOutboxStore(db: Db, opts: { transactionTimeoutMs: number }): OutboxStore {
  return {
    publishBatch(limit, publish) {
      return db.$transaction(
        async (tx) => {
          const rows = await tx.$queryRaw<OutboxRow[]>`
            SELECT id, topic, key, value, headers FROM outbox
            WHERE sent_at IS NULL ORDER BY id LIMIT ${limit} FOR UPDATE SKIP LOCKED`;
          if (rows.length === 0) return 0;
          const records: OutboxRecord[] = rows.map((r) => ({
            id: r.id.toString(),
            topic: r.topic,
            key: r.key,
            value: r.value,
            headers: r.headers,
          }));
          await publish(records);
          await tx.$executeRaw`UPDATE outbox SET sent_at = now() WHERE id = ANY(${rows.map((r) => r.id)}::bigint[])`;
          return rows.length;
        },
        { timeout: opts.transactionTimeoutMs, maxWait: opts.transactionTimeoutMs },
      );
    },
  };
}
