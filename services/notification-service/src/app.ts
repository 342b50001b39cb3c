import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { errorKind } from '@ripple/errors';
import { PageQuery, createApiApp, fetchPage, pageOf, requireUser, routeSchema, userOf } from '@ripple/http';
import { traceOf } from '@ripple/service';
import type { ApiDeps, Emit, TraceContext } from '@ripple/service';
import type { Db, Tx } from './db.js';
import type { Notification } from './generated/prisma/client.js';
import { emitUnreadCounts, unreadCount } from './unread-counts.js';

const NotificationView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  actorId: Type.String(),
  subjectId: Type.String(),
  text: Type.String(),
  count: Type.Integer(),
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
  readAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});
const ListQuery = Type.Composite([PageQuery, Type.Object({ unread: Type.Optional(Type.Boolean()) })], {
  additionalProperties: false,
});
const IdParams = Type.Object({ notificationId: Type.String({ format: 'uuid' }) });
const UnreadCount = Type.Object({
  count: Type.Integer(),
  generation: Type.Integer({
    description:
      'Rises by one with every change of the count: of this answer and the `notification.unread_count` events, the one with the highest generation is the newest.',
  }),
});
const ReadAll = Type.Object({ read: Type.Integer() });
const NotificationNotFound = errorKind('NOTIFICATION_NOT_FOUND', 404);

const view = (n: Notification): Static<typeof NotificationView> => ({
  id: n.id,
  kind: n.kind,
  actorId: n.actorId,
  subjectId: n.subjectId,
  text: n.text,
  count: n.count,
  createdAt: n.createdAt.toISOString(),
  updatedAt: n.updatedAt.toISOString(),
  readAt: n.readAt?.toISOString() ?? null,
});

/** What one transaction marked read: `ids` (none when `all`: every unread one), `read` of them in all. */
interface Read {
  readonly userId: string;
  readonly ids: string[];
  readonly all: boolean;
  readonly read: number;
  readonly readAt: Date;
}

/** Emits notification.read and the new unread count, in the transaction that marked the notifications read. */
async function emitRead(tx: Tx, emit: Emit, { userId, ids, all, read, readAt }: Read, trace: TraceContext) {
  await emit(tx, 'notification.read', { userId, notificationIds: ids, all, readAt: readAt.toISOString() }, trace);
  await emitUnreadCounts(tx, emit, new Map([[userId, -read]]), trace);
}

export async function buildApp(deps: ApiDeps<Db, Tx>): Promise<FastifyInstance> {
  const app = await createApiApp(deps);
  const { db, emit, mutations, now } = deps;
  const auth = { onRequest: requireUser };
  const tag = 'notifications';

  app.get<{ Querystring: Static<typeof ListQuery> }>(
    '/notifications',
    {
      ...auth,
      schema: routeSchema({
        tag,
        summary: 'Your notifications, newest first (`unread=true`: only unread ones)',
        querystring: ListQuery,
        paged: true,
        success: { status: 200, description: 'One page of notifications', body: pageOf(NotificationView) },
      }),
    },
    async (request) => {
      const { unread } = request.query;
      return fetchPage(
        request,
        ({ idBefore, take }) =>
          db.notification.findMany({
            where: { userId: userOf(request).sub, ...(unread === true && { readAt: null }), ...idBefore },
            orderBy: { id: 'desc' },
            take,
          }),
        view,
      );
    },
  );

  app.get(
    '/notifications/unread-count',
    {
      ...auth,
      schema: routeSchema({
        tag,
        summary: 'How many of your notifications are unread',
        success: { status: 200, description: 'The count', body: UnreadCount },
      }),
    },
    // One primary-key lookup of the committed count: no cache, so no invalidation a replica
    // that cannot reach Redis could lose.
    async (request) => {
      const { count, generation } = await unreadCount(db, userOf(request).sub);
      return { count, generation };
    },
  );

  app.post<{ Params: Static<typeof IdParams> }>(
    '/notifications/:notificationId/read',
    {
      ...auth,
      schema: routeSchema({
        tag,
        summary: 'Mark one notification read (events notification.read, notification.unread_count)',
        params: IdParams,
        success: { status: 200, description: 'The notification', body: NotificationView },
        errors: [NotificationNotFound],
        idempotent: true,
      }),
    },
    (request, reply) => {
      const userId = userOf(request).sub;
      return mutations.run(request, reply, 200, async (tx) => {
        const { notificationId } = request.params;
        // Another user's notification is as absent as a missing one.
        const found = await tx.notification.findFirst({ where: { id: notificationId, userId } });
        if (!found) {
          throw NotificationNotFound.error(`notification ${notificationId} does not exist`);
        }
        if (found.readAt !== null) return view(found);
        // Only if still unread: a concurrent request may have read it since, and must not count twice.
        const readAt = now();
        const { count } = await tx.notification.updateMany({
          where: { id: found.id, readAt: null },
          data: { readAt },
        });
        if (count === 0) return view(await tx.notification.findUniqueOrThrow({ where: { id: found.id } }));
        await emitRead(tx, emit, { userId, ids: [found.id], all: false, read: 1, readAt }, traceOf(request));
        return view({ ...found, readAt });
      });
    },
  );

  app.post(
    '/notifications/read-all',
    {
      ...auth,
      schema: routeSchema({
        tag,
        summary: 'Mark all your notifications read',
        success: { status: 200, description: 'How many were unread', body: ReadAll },
        idempotent: true,
      }),
    },
    (request, reply) => {
      const userId = userOf(request).sub;
      return mutations.run(request, reply, 200, async (tx) => {
        const readAt = now();
        const { count } = await tx.notification.updateMany({ where: { userId, readAt: null }, data: { readAt } });
        if (count > 0) {
          await emitRead(tx, emit, { userId, ids: [], all: true, read: count, readAt }, traceOf(request));
        }
        return { read: count };
      });
    },
  );

  return app;
}
