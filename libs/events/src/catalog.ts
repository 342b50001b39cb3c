import { Type } from '@sinclair/typebox';
import type { Static, TSchema } from '@sinclair/typebox';
import { Time, envelopeSchema } from './envelope.js';

/** Logical topic names, one per domain, versioned; deployed as `KAFKA_TOPIC_PREFIX + name`. */
export const Topics = {
  post: 'post.events.v1',
  chat: 'chat.events.v1',
  notification: 'notification.events.v1',
  presence: 'presence.events.v1',
  user: 'user.events.v1',
} as const;
export type TopicName = (typeof Topics)[keyof typeof Topics];

// Every string and array of an event is bounded so that the largest event the catalog accepts,
// with its headers, fits one Kafka produce request (MAX_PRODUCE_REQUEST_BYTES, 1,000,000 bytes;
// libs/kafka's catalog-size test builds it for each type): a larger one would be set aside by the
// outbox, never published. The bounds follow what the HTTP routes take.
const Id = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' });
const Text = Type.String({ minLength: 1, maxLength: 10_000 });
// At most 2^53 - 1: past it, JSON readers in JavaScript (clients, the gateway) read a nearby integer instead.
const Count = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });

function object<P extends Record<string, TSchema>>(properties: P) {
  return Type.Object(properties, { additionalProperties: false });
}

/**
 * One catalog entry: the schema of the whole envelope, the topic, the partition key (events with
 * one key stay in order: the aggregate id, or for post topic events the post's author, as the
 * comment on `Catalog` says), the channels it is delivered to (DESIGN.md §4), and the CloudEvents
 * `subject` (the aggregate id; the key unless given).
 */
function entry<T extends string, D extends TSchema>(
  type: T,
  topic: TopicName,
  data: D,
  key: (data: Static<D>) => string,
  channels: (data: Static<D>) => string[],
  subject: (data: Static<D>) => string = key,
) {
  return {
    type,
    topic,
    data,
    schema: envelopeSchema(type, data),
    dataschema: `urn:ripple:schema:${type}:1`,
    key,
    channels,
    subject,
  };
}

const PostCreatedData = object({ postId: Id, authorId: Id, body: Text, createdAt: Time });
const PostUpdatedData = object({ postId: Id, authorId: Id, body: Text, updatedAt: Time });
const PostDeletedData = object({ postId: Id, authorId: Id, deletedAt: Time });
const PostLikeData = object({ postId: Id, postAuthorId: Id, userId: Id, likeCount: Count, at: Time });
const CommentCreatedData = object({
  commentId: Id,
  postId: Id,
  postAuthorId: Id,
  authorId: Id,
  body: Text,
  createdAt: Time,
});
const CommentDeletedData = object({ commentId: Id, postId: Id, postAuthorId: Id, deletedBy: Id, deletedAt: Time });

const RoomCreatedData = object({
  roomId: Id,
  name: Type.String({ minLength: 1, maxLength: 200 }),
  createdBy: Id,
  // The creator and the up to 100 others chat-service's POST /rooms takes.
  memberIds: Type.Array(Id, { minItems: 1, maxItems: 101 }),
  createdAt: Time,
});
const MemberData = object({ roomId: Id, userId: Id, by: Id, at: Time });
const MessageSentData = object({ roomId: Id, messageId: Id, senderId: Id, body: Text, sentAt: Time });
const MessageEditedData = object({ roomId: Id, messageId: Id, senderId: Id, body: Text, editedAt: Time });
const MessageDeletedData = object({ roomId: Id, messageId: Id, deletedBy: Id, deletedAt: Time });
const TypingData = object({ roomId: Id, userId: Id, at: Time });
const ReadData = object({ roomId: Id, userId: Id, messageId: Id, readAt: Time });

const NotificationCreatedData = object({
  notificationId: Id,
  userId: Id,
  kind: Type.Union([
    Type.Literal('post.liked'),
    Type.Literal('comment.created'),
    Type.Literal('chat.message'),
    Type.Literal('mention'),
  ]),
  actorId: Id,
  subjectId: Id,
  text: Type.String({ minLength: 1, maxLength: 1000 }),
  createdAt: Time,
});
const NotificationReadData = object({
  userId: Id,
  // notification-service marks one read (or all, listing none); 100: a page of notifications.
  notificationIds: Type.Array(Id, { maxItems: 100 }),
  all: Type.Boolean(),
  readAt: Time,
});
const UnreadCountData = object({
  userId: Id,
  count: Count,
  // Optional: events written before notification-service kept a count per user have none.
  generation: Type.Optional(
    Type.Integer({
      minimum: 0,
      maximum: Number.MAX_SAFE_INTEGER,
      description:
        "Rises by one with every change of the user's count, in commit order: show the count of the highest generation seen (GET /notifications/unread-count answers one too).",
    }),
  ),
});

const PresenceData = object({ userId: Id, connectionId: Id, nodeId: Id, at: Time });

const FollowData = object({ followerId: Id, followeeId: Id, at: Time });

const post = (d: { postId: string }) => `post:${d.postId}`;
const creator = (id: string) => `creator:${id}`;
const user = (id: string) => `user:${id}`;
const chat = (d: { roomId: string }) => `chat:${d.roomId}`;

export const Catalog = {
  // Post topic events are keyed by the post's author, not the post: one author's posts then
  // share a partition and an outbox shard, so `creator:<author>` (and every `feed:` made of it)
  // gets them in the order they were written, and each post's own events (edits, likes,
  // comments) stay in order as before. The price: a very active author's traffic, likes and
  // comments on their posts included, goes through one partition (README: "Order").
  // The author sees their own post at once (seed 004); followers see it in the creator feed.
  'post.created': entry(
    'post.created',
    Topics.post,
    PostCreatedData,
    (d) => d.authorId,
    (d) => [creator(d.authorId), user(d.authorId)],
    (d) => d.postId,
  ),
  'post.updated': entry(
    'post.updated',
    Topics.post,
    PostUpdatedData,
    (d) => d.authorId,
    (d) => [creator(d.authorId), post(d)],
    (d) => d.postId,
  ),
  'post.deleted': entry(
    'post.deleted',
    Topics.post,
    PostDeletedData,
    (d) => d.authorId,
    (d) => [creator(d.authorId), post(d)],
    (d) => d.postId,
  ),
  'post.liked': entry(
    'post.liked',
    Topics.post,
    PostLikeData,
    (d) => d.postAuthorId,
    (d) => [post(d)],
    (d) => d.postId,
  ),
  'post.unliked': entry(
    'post.unliked',
    Topics.post,
    PostLikeData,
    (d) => d.postAuthorId,
    (d) => [post(d)],
    (d) => d.postId,
  ),
  // Comments, like every post topic event, are keyed by the post's author (see above).
  'comment.created': entry(
    'comment.created',
    Topics.post,
    CommentCreatedData,
    (d) => d.postAuthorId,
    (d) => [post(d)],
    (d) => d.postId,
  ),
  'comment.deleted': entry(
    'comment.deleted',
    Topics.post,
    CommentDeletedData,
    (d) => d.postAuthorId,
    (d) => [post(d)],
    (d) => d.postId,
  ),

  // Members learn about a room, and about being added or removed, on their own channel.
  'chat.room.created': entry(
    'chat.room.created',
    Topics.chat,
    RoomCreatedData,
    (d) => d.roomId,
    (d) => d.memberIds.map(user),
  ),
  'chat.member.joined': entry(
    'chat.member.joined',
    Topics.chat,
    MemberData,
    (d) => d.roomId,
    (d) => [chat(d), user(d.userId)],
  ),
  'chat.member.left': entry(
    'chat.member.left',
    Topics.chat,
    MemberData,
    (d) => d.roomId,
    (d) => [chat(d), user(d.userId)],
  ),
  'chat.message.sent': entry(
    'chat.message.sent',
    Topics.chat,
    MessageSentData,
    (d) => d.roomId,
    (d) => [chat(d)],
  ),
  'chat.message.edited': entry(
    'chat.message.edited',
    Topics.chat,
    MessageEditedData,
    (d) => d.roomId,
    (d) => [chat(d)],
  ),
  'chat.message.deleted': entry(
    'chat.message.deleted',
    Topics.chat,
    MessageDeletedData,
    (d) => d.roomId,
    (d) => [chat(d)],
  ),
  'chat.typing': entry(
    'chat.typing',
    Topics.chat,
    TypingData,
    (d) => d.roomId,
    (d) => [chat(d)],
  ),
  'chat.read': entry(
    'chat.read',
    Topics.chat,
    ReadData,
    (d) => d.roomId,
    (d) => [chat(d)],
  ),

  'notification.created': entry(
    'notification.created',
    Topics.notification,
    NotificationCreatedData,
    (d) => d.userId,
    (d) => [user(d.userId)],
  ),
  'notification.read': entry(
    'notification.read',
    Topics.notification,
    NotificationReadData,
    (d) => d.userId,
    (d) => [user(d.userId)],
  ),
  'notification.unread_count': entry(
    'notification.unread_count',
    Topics.notification,
    UnreadCountData,
    (d) => d.userId,
    (d) => [user(d.userId)],
  ),

  // Made by the gateway when a user's first connection opens or last one closes.
  'presence.online': entry(
    'presence.online',
    Topics.presence,
    PresenceData,
    (d) => d.userId,
    (d) => [user(d.userId)],
  ),
  'presence.offline': entry(
    'presence.offline',
    Topics.presence,
    PresenceData,
    (d) => d.userId,
    (d) => [user(d.userId)],
  ),

  // The follow graph (post-service). Keyed by the follower so one user's follows and unfollows
  // stay in order; on the follower's own channel, where each gateway node holding that user's
  // `feed:` subscription reads it to keep the followee set fresh (services/fanout-gateway/src/feed.ts).
  'user.followed': entry(
    'user.followed',
    Topics.user,
    FollowData,
    (d) => d.followerId,
    (d) => [user(d.followerId)],
  ),
  'user.unfollowed': entry(
    'user.unfollowed',
    Topics.user,
    FollowData,
    (d) => d.followerId,
    (d) => [user(d.followerId)],
  ),
};

export type Catalog = typeof Catalog;
export type EventType = keyof Catalog;
/** The full envelope of one event type. */
export type EventOf<T extends EventType> = Static<Catalog[T]['schema']>;
/** The `data` of one event type. */
export type DataOf<T extends EventType> = Static<Catalog[T]['data']>;
export type AnyEvent = { [T in EventType]: EventOf<T> }[EventType];
export type PostCreated = EventOf<'post.created'>;
