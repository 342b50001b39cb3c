import { Type } from '@sinclair/typebox';
import { errorKind } from '@ripple/errors';

const Text = Type.String({ minLength: 1, maxLength: 10_000 });
const Id = Type.String({ format: 'uuid' });
const UserId = Type.String({ minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9_-]+$' });

export const BodyInput = Type.Object({ body: Text }, { additionalProperties: false });
export const PostParams = Type.Object({ postId: Id });
export const CommentParams = Type.Object({ postId: Id, commentId: Id });
export const UserParams = Type.Object({ userId: UserId });

export const PostView = Type.Object({
  id: Type.String(),
  authorId: Type.String(),
  body: Type.String(),
  likeCount: Type.Integer(),
  commentCount: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

export const CommentView = Type.Object({
  id: Type.String(),
  postId: Type.String(),
  authorId: Type.String(),
  body: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
});

export const LikeView = Type.Object({ postId: Type.String(), liked: Type.Boolean(), likeCount: Type.Integer() });

/** The errors post-service's routes answer with, besides the shared ones (`HttpErrors`). */
export const PostErrors = {
  postNotFound: errorKind('POST_NOT_FOUND', 404),
  postForbidden: errorKind('POST_FORBIDDEN', 403),
  commentNotFound: errorKind('COMMENT_NOT_FOUND', 404),
  commentForbidden: errorKind('COMMENT_FORBIDDEN', 403),
} as const;
