import { randomUUID } from 'node:crypto';
import { createEvent, toOutboxMessage } from '@ripple/events';
import type { OutboxMessage, PostCreated } from '@ripple/events';

export interface Post {
  readonly id: string;
  readonly authorId: string;
  readonly body: string;
  readonly createdAt: Date;
}

/** Persistence the post domain needs; the Prisma implementation writes both in one transaction. */
export interface PostStore {
  insertWithEvent(post: Post, event: OutboxMessage): Promise<void>;
}

export interface PostDeps {
  readonly store: PostStore;
  readonly now: () => Date;
  /** Called after the transaction committed, so the relay publishes without waiting for its poll. */
  readonly afterCommit: () => void;
}

export async function createPost(
  deps: PostDeps,
  input: { authorId: string; body: string; trace?: { traceparent?: string; tracestate?: string } },
): Promise<{ post: Post; event: PostCreated }> {
  const post: Post = { id: randomUUID(), authorId: input.authorId, body: input.body, createdAt: deps.now() };
  const event: PostCreated = createEvent('post.created', {
    source: 'post-service',
    time: post.createdAt,
    data: { postId: post.id, authorId: post.authorId, body: post.body, createdAt: post.createdAt.toISOString() },
  });
  await deps.store.insertWithEvent(post, toOutboxMessage(event, input.trace));
  deps.afterCommit();
  return { post, event };
}
