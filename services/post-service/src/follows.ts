import type { FastifyInstance } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { uuidv7 } from '@ripple/db';
import { PageQuery, fetchPage, pageOf, requireUser, routeSchema, userOf } from '@ripple/http';
import { traceOf } from '@ripple/service';
import type { ApiDeps } from '@ripple/service';
import type { Db, Tx } from './db.js';
import { FollowEntry, FollowErrors, FollowParams, FollowView, FollowingIds, UserParams, UserView } from './schemas.js';

/**
 * Most users one user may follow. It bounds what GET /me/feed and a gateway node's followee set
 * hold per user (the same cap as large social networks use); past it: 409 FOLLOW_LIMIT_REACHED.
 */
export const FOLLOWING_MAX = 5000;

/**
 * Locks both users' count rows (creating them when missing), in id order so that two users
 * following each other at once cannot deadlock. The follower's row lock also orders their
 * follow events: it is taken before the outbox row is written (README: per-aggregate order).
 */
async function lockCounts(tx: Tx, a: string, b: string): Promise<void> {
  const [first, second] = a < b ? [a, b] : [b, a];
  await tx.$executeRaw`
    INSERT INTO user_counts (user_id) VALUES (${first}), (${second})
    ON CONFLICT (user_id) DO UPDATE SET user_id = EXCLUDED.user_id`;
}

/**
 * The follow graph: PUT/DELETE /me/following/:userId (idempotent, `user.followed` /
 * `user.unfollowed` through the outbox only when the relation changed), the followers and
 * following pages, the counts of a user, and the ids the gateway loads for a `feed:` channel.
 */
export function installFollows(app: FastifyInstance, deps: ApiDeps<Db, Tx>): void {
  const { db, emit, mutations, now } = deps;
  const auth = { onRequest: requireUser };
  const tag = 'follows';

  const change = (following: boolean) =>
    app[following ? 'put' : 'delete']<{ Params: Static<typeof FollowParams> }>(
      '/me/following/:userId',
      {
        ...auth,
        schema: routeSchema({
          tag,
          summary: following
            ? 'Follow a user (event user.followed when the relation changed)'
            : 'Unfollow a user (event user.unfollowed when the relation changed)',
          params: FollowParams,
          success: { status: 200, description: 'The relation after the request', body: FollowView },
          errors: following ? [FollowErrors.followSelf, FollowErrors.followLimitReached] : [FollowErrors.followSelf],
          idempotent: true,
        }),
      },
      (request, reply) =>
        mutations.run(request, reply, 200, async (tx) => {
          const followerId = userOf(request).sub;
          const followeeId = request.params.userId;
          const view = { followerId, followeeId, following };
          if (followeeId === followerId) {
            throw FollowErrors.followSelf.error('a user cannot follow themselves', { field: 'params.userId' });
          }
          await lockCounts(tx, followerId, followeeId);
          const changed = following
            ? await follow(tx, followerId, followeeId)
            : (await tx.follow.deleteMany({ where: { followerId, followeeId } })).count;
          // Following twice (or unfollowing a user not followed) changes nothing and emits nothing.
          if (changed === 0) return view;
          const step = following ? 1 : -1;
          await tx.userCounts.update({ where: { userId: followerId }, data: { followingCount: { increment: step } } });
          await tx.userCounts.update({ where: { userId: followeeId }, data: { followerCount: { increment: step } } });
          const data = { followerId, followeeId, at: now().toISOString() };
          await emit(tx, following ? 'user.followed' : 'user.unfollowed', data, traceOf(request));
          return view;
        }),
    );

  const follow = async (tx: Tx, followerId: string, followeeId: string): Promise<number> => {
    const counts = await tx.userCounts.findUniqueOrThrow({ where: { userId: followerId } });
    const existing = await tx.follow.findUnique({ where: { followerId_followeeId: { followerId, followeeId } } });
    if (existing) return 0;
    if (counts.followingCount >= FOLLOWING_MAX) {
      throw FollowErrors.followLimitReached.error(`a user follows at most ${FOLLOWING_MAX} users`);
    }
    await tx.follow.create({ data: { id: uuidv7(), followerId, followeeId, createdAt: now() } });
    return 1;
  };

  change(true);
  change(false);

  const page = (direction: 'followers' | 'following') =>
    app.get<{ Params: Static<typeof UserParams>; Querystring: Static<typeof PageQuery> }>(
      `/users/:userId/${direction}`,
      {
        ...auth,
        schema: routeSchema({
          tag,
          summary: direction === 'followers' ? 'Who follows a user, newest first' : 'Whom a user follows, newest first',
          params: UserParams,
          querystring: PageQuery,
          paged: true,
          success: { status: 200, description: 'One page of follows', body: pageOf(FollowEntry) },
        }),
      },
      async (request) => {
        const { userId } = request.params;
        const where = direction === 'followers' ? { followeeId: userId } : { followerId: userId };
        return fetchPage(
          request,
          ({ idBefore, take }) =>
            db.follow.findMany({ where: { ...where, ...idBefore }, orderBy: { id: 'desc' }, take }),
          (f) => ({
            userId: direction === 'followers' ? f.followerId : f.followeeId,
            followedAt: f.createdAt.toISOString(),
          }),
        );
      },
    );
  page('followers');
  page('following');

  app.get<{ Params: Static<typeof UserParams> }>(
    '/users/:userId',
    {
      ...auth,
      schema: routeSchema({
        tag,
        summary: "A user's follower and following counts",
        params: UserParams,
        success: { status: 200, description: 'The counts (zeros for a user nobody follows)', body: UserView },
      }),
    },
    async (request) => {
      const { userId } = request.params;
      // Users live in the identity provider, not here: a user nobody follows and who follows
      // nobody has no row, and answers zeros (README: "unknown users").
      const counts = await db.userCounts.findUnique({ where: { userId } });
      return { id: userId, followerCount: counts?.followerCount ?? 0, followingCount: counts?.followingCount ?? 0 };
    },
  );

  const idsSchema = routeSchema({
    tag,
    summary: 'Every user the caller follows (what a gateway node loads for feed:<user>)',
    success: { status: 200, description: 'The followee ids', body: FollowingIds },
  });
  // Every feed subscription at a gateway calls this: one raw index-only read (follows' primary key
  // starts with follower_id), which skips the query compiler that a findMany pays each time.
  // Its rate limit is a budget of its own (same size, its own counters): a user who spent the
  // API's budget must still get their feed loaded, and feed loads must not spend the API's.
  app.get('/me/following/ids', { ...auth, schema: idsSchema, config: { rateLimit: {} } }, async (request) => {
    const rows = await db.$queryRaw<{ followee_id: string }[]>`
      SELECT followee_id FROM follows WHERE follower_id = ${userOf(request).sub} LIMIT ${FOLLOWING_MAX}`;
    return { ids: rows.map((r) => r.followee_id) };
  });
}
