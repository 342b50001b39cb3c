import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { envelopeSchema } from './envelope.js';

/** Logical topic names; the deployed name is `KAFKA_TOPIC_PREFIX + name`. */
export const Topics = {
  post: 'post.events.v1',
  notification: 'notification.events.v1',
  chat: 'chat.events.v1',
} as const;
export type TopicName = (typeof Topics)[keyof typeof Topics];

const Id = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' });

export const PostCreatedData = Type.Object(
  {
    postId: Id,
    authorId: Id,
    body: Type.String({ minLength: 1, maxLength: 10_000 }),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);
export type PostCreatedData = Static<typeof PostCreatedData>;

export const PostCreated = envelopeSchema('post.created', PostCreatedData);
export type PostCreated = Static<typeof PostCreated>;

/**
 * Every event type: its schema, its topic, its partition key (the aggregate id, so one
 * aggregate's events stay in order) and the channels it is delivered to (DESIGN.md §4).
 */
export const Catalog = {
  'post.created': {
    schema: PostCreated,
    topic: Topics.post,
    dataschema: 'urn:ripple:schema:post.created:1',
    key: (e: PostCreated) => e.data.postId,
    // The author sees their own post at once (seed 004), followers see it in the creator feed.
    channels: (e: PostCreated) => [`creator:${e.data.authorId}`, `user:${e.data.authorId}`],
  },
} as const;

export type EventType = keyof typeof Catalog;
export type AnyEvent = PostCreated;
