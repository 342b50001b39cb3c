import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { uuidv7 } from '@ripple/db';
import { PageQuery, createApiApp, fetchPage, pageOf, requireUser, routeSchema, userOf } from '@ripple/http';
import type { OutboxMessage } from '@ripple/events';
import { outboxColumns, traceOf } from '@ripple/service';
import type { ApiDeps, BatchWrite } from '@ripple/service';
import type { Db, Tx } from './db.js';
import { FOLLOWING_MAX, installFollows } from './follows.js';
import type { Comment, Post } from './generated/prisma/client.js';
import {
  BodyInput,
  CommentParams,
  CommentView,
  LikeView,
  PostErrors,
  PostParams,
  PostView,
  UserParams,
} from './schemas.js';

type Deps = ApiDeps<Db, Tx>;

const postView = (p: Post): Static<typeof PostView> => ({
  id: p.id,
  authorId: p.authorId,
  body: p.body,
  likeCount: p.likeCount,
  commentCount: p.commentCount,
  createdAt: p.createdAt.toISOString(),
  updatedAt: p.updatedAt?.toISOString() ?? null,
});

const commentView = (c: Comment): Static<typeof CommentView> => ({
  id: c.id,
  postId: c.postId,
  authorId: c.authorId,
  body: c.body,
  createdAt: c.createdAt.toISOString(),
});

async function findPost(db: Db | Tx, id: string, lock = false): Promise<Post> {
  // FOR UPDATE serialises changes to one post (edit, delete, counters) without a lost update.
  if (lock) await db.$executeRaw`SELECT 1 FROM posts WHERE id = ${id}::uuid FOR UPDATE`;
  const post = await db.post.findUnique({ where: { id } });
  if (!post) throw PostErrors.postNotFound.error(`post ${id} does not exist`);
  return post;
}

async function authoredPost(tx: Tx, id: string, userId: string, action: string): Promise<Post> {
  const post = await findPost(tx, id, true);
  if (post.authorId !== userId) {
    throw PostErrors.postForbidden.error(`only the author may ${action} this post`);
  }
  return post;
}

/**
 * The hottest write: posts and their outbox rows in one statement, so one round trip commits
 * both (no interactive transaction), and concurrent requests share it (group commit, `batch`):
 * the profile was dominated by the per-statement work of the driver and Prisma.
 */
const insertPosts = (): BatchWrite<{ post: Post; message: OutboxMessage }, undefined> => async (sql, rows) => {
  const input = JSON.stringify(
    rows.map(({ post, message }, n) => ({
      n,
      id: post.id,
      author_id: post.authorId,
      body: post.body,
      created_at: post.createdAt.toISOString(),
      ...outboxColumns(message),
    })),
  );
  await sql.$executeRaw`
      -- posts.insert
      WITH input AS (
        SELECT * FROM jsonb_to_recordset(${input}::jsonb) AS t(
          n int, id uuid, author_id text, body text, created_at timestamptz,
          event_id uuid, topic text, key text, shard int, value text, headers jsonb)
      ), post AS (
        INSERT INTO posts (id, author_id, body, created_at) SELECT id, author_id, body, created_at FROM input
      )
      INSERT INTO outbox (event_id, topic, key, shard, value, headers)
      SELECT event_id, topic, key, shard, value, headers FROM input ORDER BY n`;
  return rows.map(() => undefined);
};

export async function buildApp(deps: Deps): Promise<FastifyInstance> {
  const app = await createApiApp(deps);
  const { batch, db, emit, mutations, now, outboxMessage } = deps;
  const insertPost = batch('posts.insert', insertPosts());
  const auth = { onRequest: requireUser };
  const { postNotFound, postForbidden, commentNotFound, commentForbidden } = PostErrors;

  app.post<{ Body: Static<typeof BodyInput> }>(
    '/posts',
    {
      ...auth,
      schema: routeSchema({
        tag: 'posts',
        summary: 'Publish a post (event post.created)',
        body: BodyInput,
        success: { status: 201, description: 'The new post', body: PostView },
        idempotent: true,
      }),
    },
    (request, reply) =>
      mutations.single(request, reply, 201, async (sql) => {
        const post: Post = {
          id: uuidv7(),
          authorId: userOf(request).sub,
          body: request.body.body,
          likeCount: 0,
          commentCount: 0,
          createdAt: now(),
          updatedAt: null,
        };
        const { message } = outboxMessage(
          'post.created',
          { postId: post.id, authorId: post.authorId, body: post.body, createdAt: post.createdAt.toISOString() },
          traceOf(request),
        );
        await insertPost(sql, { post, message });
        return postView(post);
      }),
  );

  app.get<{ Params: Static<typeof PostParams> }>(
    '/posts/:postId',
    {
      ...auth,
      schema: routeSchema({
        tag: 'posts',
        summary: 'Read a post',
        params: PostParams,
        success: { status: 200, description: 'The post', body: PostView },
        errors: [postNotFound],
      }),
    },
    async (request) => postView(await findPost(db, request.params.postId)),
  );

  app.patch<{ Params: Static<typeof PostParams>; Body: Static<typeof BodyInput> }>(
    '/posts/:postId',
    {
      ...auth,
      schema: routeSchema({
        tag: 'posts',
        summary: 'Edit your post (event post.updated)',
        params: PostParams,
        body: BodyInput,
        success: { status: 200, description: 'The edited post', body: PostView },
        errors: [postNotFound, postForbidden],
        idempotent: true,
      }),
    },
    (request, reply) =>
      mutations.run(request, reply, 200, async (tx) => {
        const { postId } = request.params;
        await authoredPost(tx, postId, userOf(request).sub, 'edit');
        const post = await tx.post.update({
          where: { id: postId },
          data: { body: request.body.body, updatedAt: now() },
        });
        const updatedAt = (post.updatedAt ?? post.createdAt).toISOString();
        await emit(
          tx,
          'post.updated',
          { postId, authorId: post.authorId, body: post.body, updatedAt },
          traceOf(request),
        );
        return postView(post);
      }),
  );

  app.delete<{ Params: Static<typeof PostParams> }>(
    '/posts/:postId',
    {
      ...auth,
      schema: routeSchema({
        tag: 'posts',
        summary: 'Delete your post (event post.deleted)',
        params: PostParams,
        success: { status: 204, description: 'Deleted', body: null },
        errors: [postNotFound, postForbidden],
        idempotent: true,
      }),
    },
    (request, reply) =>
      mutations.run(request, reply, 204, async (tx) => {
        const { postId } = request.params;
        const post = await authoredPost(tx, postId, userOf(request).sub, 'delete');
        await tx.post.delete({ where: { id: postId } });
        const deletedAt = now().toISOString();
        await emit(tx, 'post.deleted', { postId, authorId: post.authorId, deletedAt }, traceOf(request));
        return undefined;
      }),
  );

  app.get<{ Params: Static<typeof UserParams>; Querystring: Static<typeof PageQuery> }>(
    '/users/:userId/posts',
    {
      ...auth,
      schema: routeSchema({
        tag: 'posts',
        summary: "A user's posts, newest first",
        params: UserParams,
        querystring: PageQuery,
        paged: true,
        success: { status: 200, description: 'One page of posts', body: pageOf(PostView) },
      }),
    },
    async (request) => {
      return fetchPage(
        request,
        ({ idBefore, take }) =>
          db.post.findMany({ where: { authorId: request.params.userId, ...idBefore }, orderBy: { id: 'desc' }, take }),
        postView,
      );
    },
  );

  app.get<{ Querystring: Static<typeof PageQuery> }>(
    '/me/feed',
    {
      ...auth,
      schema: routeSchema({
        tag: 'feed',
        summary: 'My feed: posts of everyone I follow, and my own, newest first',
        querystring: PageQuery,
        paged: true,
        success: { status: 200, description: 'One page of posts', body: pageOf(PostView) },
      }),
    },
    async (request) => {
      // The REST twin of the `feed:` channel: posts of everyone the caller follows, and their own,
      // newest first. Two indexed queries: the followee ids (at most FOLLOWING_MAX), then one
      // range scan per author merged by PostgreSQL on (author_id, id).
      const me = userOf(request).sub;
      const follows = await db.follow.findMany({
        where: { followerId: me },
        select: { followeeId: true },
        take: FOLLOWING_MAX,
      });
      const authors = [me, ...follows.map((f) => f.followeeId)];
      return fetchPage(
        request,
        ({ idBefore, take }) =>
          db.post.findMany({ where: { authorId: { in: authors }, ...idBefore }, orderBy: { id: 'desc' }, take }),
        postView,
      );
    },
  );

  installFollows(app, deps);

  const like =
    (liked: boolean) => (request: FastifyRequest<{ Params: Static<typeof PostParams> }>, reply: FastifyReply) =>
      mutations.run(request, reply, 200, async (tx) => {
        const { postId } = request.params;
        const userId = userOf(request).sub;
        const post = await findPost(tx, postId, true);
        const changed = liked
          ? (await tx.like.createMany({ data: [{ postId, userId }], skipDuplicates: true })).count
          : (await tx.like.deleteMany({ where: { postId, userId } })).count;
        // Liking twice (or unliking what is not liked) changes nothing and emits nothing.
        if (changed === 0) return { postId, liked, likeCount: post.likeCount };
        const { likeCount } = await tx.post.update({
          where: { id: postId },
          data: { likeCount: { increment: liked ? 1 : -1 } },
        });
        const data = { postId, postAuthorId: post.authorId, userId, likeCount, at: now().toISOString() };
        await emit(tx, liked ? 'post.liked' : 'post.unliked', data, traceOf(request));
        return { postId, liked, likeCount };
      });
  const likeSchema = (summary: string) => ({
    ...auth,
    schema: routeSchema({
      tag: 'likes',
      summary,
      params: PostParams,
      success: { status: 200, description: 'Whether you like the post, and its like count', body: LikeView },
      errors: [postNotFound],
      idempotent: true,
    }),
  });
  app.post<{ Params: Static<typeof PostParams> }>(
    '/posts/:postId/likes',
    likeSchema('Like a post (event post.liked; liking twice changes nothing)'),
    like(true),
  );
  app.delete<{ Params: Static<typeof PostParams> }>(
    '/posts/:postId/likes',
    likeSchema('Take back your like (event post.unliked)'),
    like(false),
  );

  app.post<{ Params: Static<typeof PostParams>; Body: Static<typeof BodyInput> }>(
    '/posts/:postId/comments',
    {
      ...auth,
      schema: routeSchema({
        tag: 'comments',
        summary: 'Comment on a post (event comment.created)',
        params: PostParams,
        body: BodyInput,
        success: { status: 201, description: 'The new comment', body: CommentView },
        errors: [postNotFound],
        idempotent: true,
      }),
    },
    (request, reply) =>
      mutations.run(request, reply, 201, async (tx) => {
        const { postId } = request.params;
        const post = await findPost(tx, postId, true);
        const comment = await tx.comment.create({
          data: { id: uuidv7(), postId, authorId: userOf(request).sub, body: request.body.body, createdAt: now() },
        });
        await tx.post.update({ where: { id: postId }, data: { commentCount: { increment: 1 } } });
        const data = {
          commentId: comment.id,
          postId,
          postAuthorId: post.authorId,
          authorId: comment.authorId,
          body: comment.body,
          createdAt: comment.createdAt.toISOString(),
        };
        await emit(tx, 'comment.created', data, traceOf(request));
        return commentView(comment);
      }),
  );

  app.get<{ Params: Static<typeof PostParams>; Querystring: Static<typeof PageQuery> }>(
    '/posts/:postId/comments',
    {
      ...auth,
      schema: routeSchema({
        tag: 'comments',
        summary: "A post's comments, newest first",
        params: PostParams,
        querystring: PageQuery,
        paged: true,
        success: { status: 200, description: 'One page of comments', body: pageOf(CommentView) },
        errors: [postNotFound],
      }),
    },
    async (request) => {
      const { postId } = request.params;
      await findPost(db, postId);
      return fetchPage(
        request,
        ({ idBefore, take }) => db.comment.findMany({ where: { postId, ...idBefore }, orderBy: { id: 'desc' }, take }),
        commentView,
      );
    },
  );

  app.delete<{ Params: Static<typeof CommentParams> }>(
    '/posts/:postId/comments/:commentId',
    {
      ...auth,
      schema: routeSchema({
        tag: 'comments',
        summary: 'Delete a comment: its author or the post author (event comment.deleted)',
        params: CommentParams,
        success: { status: 204, description: 'Deleted', body: null },
        errors: [postNotFound, commentNotFound, commentForbidden],
        idempotent: true,
      }),
    },
    (request, reply) =>
      mutations.run(request, reply, 204, async (tx) => {
        const { postId, commentId } = request.params;
        const userId = userOf(request).sub;
        const post = await findPost(tx, postId, true);
        const comment = await tx.comment.findFirst({ where: { id: commentId, postId } });
        if (!comment) {
          throw PostErrors.commentNotFound.error(`comment ${commentId} does not exist`);
        }
        if (comment.authorId !== userId && post.authorId !== userId) {
          throw PostErrors.commentForbidden.error('only the comment author or the post author may delete it');
        }
        await tx.comment.delete({ where: { id: commentId } });
        await tx.post.update({ where: { id: postId }, data: { commentCount: { decrement: 1 } } });
        const data = {
          commentId,
          postId,
          postAuthorId: post.authorId,
          deletedBy: userId,
          deletedAt: now().toISOString(),
        };
        await emit(tx, 'comment.deleted', data, traceOf(request));
        return undefined;
      }),
  );

  return app;
}
