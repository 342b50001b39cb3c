import { Type } from '@sinclair/typebox';
import { errorKind } from '@ripple/errors';
import { StoredText } from '@ripple/http';

const Text = StoredText({ minLength: 1, maxLength: 10_000 });
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

export const FollowParams = Type.Object({ userId: UserId });

/** The answer of PUT and DELETE /me/following/:userId: the relation after the request. */
export const FollowView = Type.Object({
  followerId: Type.String(),
  followeeId: Type.String(),
  following: Type.Boolean(),
});

/** One row of a followers or following page: the other user, and since when. */
export const FollowEntry = Type.Object({ userId: Type.String(), followedAt: Type.String({ format: 'date-time' }) });

export const UserView = Type.Object({
  id: Type.String(),
  followerCount: Type.Integer(),
  followingCount: Type.Integer(),
});

/** Every user the caller follows (at most FOLLOWING_MAX): what a gateway node loads for `feed:`. */
export const FollowingIds = Type.Object({ ids: Type.Array(Type.String()) });

/** The follow graph's own errors. */
export const FollowErrors = {
  followSelf: errorKind('FOLLOW_SELF', 400),
  followLimitReached: errorKind('FOLLOW_LIMIT_REACHED', 409),
} as const;

/** The errors post-service's routes answer with, besides the shared ones (`HttpErrors`). */
export const PostErrors = {
  postNotFound: errorKind('POST_NOT_FOUND', 404),
  postForbidden: errorKind('POST_FORBIDDEN', 403),
  commentNotFound: errorKind('COMMENT_NOT_FOUND', 404),
  commentForbidden: errorKind('COMMENT_FORBIDDEN', 403),
} as const;
