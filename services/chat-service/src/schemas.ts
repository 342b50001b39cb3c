import { Type } from '@sinclair/typebox';
import { errorKind } from '@ripple/errors';
import { StoredText } from '@ripple/http';

const Id = Type.String({ format: 'uuid' });
const UserId = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' });
const Time = Type.String({ format: 'date-time' });

export const CreateRoomInput = Type.Object(
  {
    name: StoredText({ minLength: 1, maxLength: 200 }),
    /** Other members besides the creator, who becomes the owner. */
    memberIds: Type.Optional(Type.Array(UserId, { maxItems: 100, uniqueItems: true })),
  },
  { additionalProperties: false },
);
export const AddMemberInput = Type.Object({ userId: UserId }, { additionalProperties: false });
export const MessageInput = Type.Object(
  { body: StoredText({ minLength: 1, maxLength: 10_000 }) },
  { additionalProperties: false },
);
export const ReadInput = Type.Object({ messageId: Id }, { additionalProperties: false });

export const RoomParams = Type.Object({ roomId: Id });
export const MemberParams = Type.Object({ roomId: Id, userId: UserId });
export const MessageParams = Type.Object({ roomId: Id, messageId: Id });

export const MemberView = Type.Object({
  userId: Type.String(),
  role: Type.Union([Type.Literal('owner'), Type.Literal('member')]),
  joinedAt: Time,
  lastReadMessageId: Type.Union([Type.String(), Type.Null()]),
});
export const RoomView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  createdBy: Type.String(),
  createdAt: Time,
  members: Type.Array(MemberView),
});
export const RoomSummary = Type.Omit(RoomView, ['members']);
export const MessageView = Type.Object({
  id: Type.String(),
  roomId: Type.String(),
  senderId: Type.String(),
  body: Type.String(),
  createdAt: Time,
  editedAt: Type.Union([Time, Type.Null()]),
});
export const SubscriptionTokenView = Type.Object({ channel: Type.String(), token: Type.String(), expiresAt: Time });
export const TypingView = Type.Object({ published: Type.Boolean() });
export const MemberAddedView = Type.Object({ roomId: Type.String(), userId: Type.String() });
export const ReadView = Type.Object({
  roomId: Type.String(),
  lastReadMessageId: Type.Union([Type.String(), Type.Null()]),
});

/** The errors chat-service's routes answer with, besides the shared ones (`HttpErrors`). */
export const ChatErrors = {
  roomNotFound: errorKind('ROOM_NOT_FOUND', 404),
  roomForbidden: errorKind('ROOM_FORBIDDEN', 403),
  roomOwnerOnly: errorKind('ROOM_OWNER_ONLY', 403),
  roomOwnerCannotLeave: errorKind('ROOM_OWNER_CANNOT_LEAVE', 409),
  memberNotFound: errorKind('MEMBER_NOT_FOUND', 404),
  messageNotFound: errorKind('MESSAGE_NOT_FOUND', 404),
  messageForbidden: errorKind('MESSAGE_FORBIDDEN', 403),
  typingThrottled: errorKind('TYPING_THROTTLED', 429, { retriable: true }),
} as const;
