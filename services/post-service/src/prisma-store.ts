import { PrismaPg } from '@prisma/adapter-pg';
import type { OutboxMessage } from '@ripple/events';
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
            shard: event.shard,
            value: event.value,
            headers: event.headers,
          },
        }),
      ]);
    },
  };
}
