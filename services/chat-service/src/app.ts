import type { FastifyInstance } from 'fastify';
import type { Static } from '@sinclair/typebox';
import { signSubscriptionToken } from '@ripple/auth';
import type { JwtSecret } from '@ripple/auth';
import { uuidv7 } from '@ripple/db';
import { PageQuery, createApiApp, fetchPage, pageOf, requireUser, routeSchema, userOf } from '@ripple/http';
import type { OutboxMessage } from '@ripple/events';
import { outboxColumns, traceOf } from '@ripple/service';
import type { ApiDeps, BatchWrite } from '@ripple/service';
import type { Db, Tx } from './db.js';
import type { Message, Room, RoomMember } from './generated/prisma/client.js';
import {
  AddMemberInput,
  ChatErrors,
  CreateRoomInput,
  MemberAddedView,
  MemberParams,
  MessageInput,
  MessageParams,
  MessageView,
  ReadInput,
  ReadView,
  RoomParams,
  RoomSummary,
  RoomView,
  SubscriptionTokenView,
  TypingView,
} from './schemas.js';

export interface ChatDeps extends ApiDeps<Db, Tx> {
  /** Signs subscription tokens; the gateway verifies them with the same secret. */
  readonly subscriptionSecret: JwtSecret;
  readonly subscriptionTokenTtlSeconds: number;
  /** A user's typing indicator in a room is published at most once per this interval. */
  readonly typingIntervalMs: number;
}

const roomSummary = (r: Room): Static<typeof RoomSummary> => ({
  id: r.id,
  name: r.name,
  createdBy: r.createdBy,
  createdAt: r.createdAt.toISOString(),
});
const roomView = (r: Room & { members: RoomMember[] }): Static<typeof RoomView> => ({
  ...roomSummary(r),
  members: r.members.map((m) => ({
    userId: m.userId,
    role: m.role === 'owner' ? 'owner' : 'member',
    joinedAt: m.joinedAt.toISOString(),
    lastReadMessageId: m.lastReadMessageId,
  })),
});
const messageView = (m: Message): Static<typeof MessageView> => ({
  id: m.id,
  roomId: m.roomId,
  senderId: m.senderId,
  body: m.body,
  createdAt: m.createdAt.toISOString(),
  editedAt: m.editedAt?.toISOString() ?? null,
});

/**
 * The caller's membership of a room: 404 when the room does not exist, 403 when the caller is
 * not a member (only members read or write a room).
 */
async function membership(db: Db | Tx, roomId: string, userId: string): Promise<RoomMember> {
  const member = await db.roomMember.findUnique({ where: { roomId_userId: { roomId, userId } } });
  if (member) return member;
  if (!(await db.room.findUnique({ where: { id: roomId }, select: { id: true } }))) {
    throw ChatErrors.roomNotFound.error(`room ${roomId} does not exist`);
  }
  throw ChatErrors.roomForbidden.error('only members of this room may do this');
}

async function ownership(tx: Tx, roomId: string, userId: string, action: string): Promise<void> {
  const member = await membership(tx, roomId, userId);
  if (member.role !== 'owner') {
    throw ChatErrors.roomOwnerOnly.error(`only the room owner may ${action}`);
  }
}

async function messageIn(db: Db | Tx, roomId: string, messageId: string): Promise<Message> {
  const message = await db.message.findFirst({ where: { id: messageId, roomId } });
  if (!message) throw ChatErrors.messageNotFound.error(`message ${messageId} does not exist`);
  return message;
}

/**
 * The hottest chat write: for each message whose sender is a member of its room, the message and
 * its outbox row, in one statement (the membership check included: no interactive transaction),
 * shared by concurrent requests (group commit, `batch`), like POST /posts. Answers, per message,
 * whether it was written (false: the sender is not a member).
 */
const insertMessages = (): BatchWrite<{ message: Message; event: OutboxMessage }, boolean> => async (sql, rows) => {
  const input = JSON.stringify(
    rows.map(({ message, event }, n) => ({
      n,
      id: message.id,
      room_id: message.roomId,
      sender_id: message.senderId,
      body: message.body,
      created_at: message.createdAt.toISOString(),
      ...outboxColumns(event),
    })),
  );
  const written = await sql.$queryRaw<{ n: number }[]>`
      -- messages.insert
      WITH input AS (
        SELECT * FROM jsonb_to_recordset(${input}::jsonb) AS t(
          n int, id uuid, room_id uuid, sender_id text, body text, created_at timestamptz,
          event_id uuid, topic text, key text, shard int, value text, headers jsonb)
      ), allowed AS MATERIALIZED (
        SELECT * FROM input
        WHERE EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = input.room_id AND m.user_id = input.sender_id)
      ), message AS (
        INSERT INTO messages (id, room_id, sender_id, body, created_at)
        SELECT id, room_id, sender_id, body, created_at FROM allowed
      ), event AS (
        INSERT INTO outbox (event_id, topic, key, shard, value, headers)
        SELECT event_id, topic, key, shard, value, headers FROM allowed ORDER BY n
      )
      SELECT n FROM allowed`;
  const ok = new Set(written.map((w) => w.n));
  return rows.map((_row, n) => ok.has(n));
};

export async function buildApp(deps: ChatDeps): Promise<FastifyInstance> {
  const app = await createApiApp(deps);
  const { batch, db, emit, mutations, now, outboxMessage } = deps;
  const insertMessage = batch('messages.insert', insertMessages());
  const auth = { onRequest: requireUser };
  const { roomNotFound, roomForbidden, roomOwnerOnly, memberNotFound, messageNotFound, messageForbidden } = ChatErrors;
  const member = [roomNotFound, roomForbidden];
  const at = () => now().toISOString();

  app.post<{ Body: Static<typeof CreateRoomInput> }>(
    '/rooms',
    {
      ...auth,
      schema: routeSchema({
        tag: 'rooms',
        summary: 'Create a room; you become its owner (event chat.room.created)',
        body: CreateRoomInput,
        success: { status: 201, description: 'The new room', body: RoomView },
        idempotent: true,
      }),
    },
    (request, reply) =>
      mutations.run(request, reply, 201, async (tx) => {
        const owner = userOf(request).sub;
        const others = (request.body.memberIds ?? []).filter((id) => id !== owner);
        const room = await tx.room.create({
          data: {
            id: uuidv7(),
            name: request.body.name,
            createdBy: owner,
            createdAt: now(),
            members: { create: [{ userId: owner, role: 'owner' }, ...others.map((userId) => ({ userId }))] },
          },
          include: { members: { orderBy: { joinedAt: 'asc' } } },
        });
        const data = {
          roomId: room.id,
          name: room.name,
          createdBy: owner,
          memberIds: [owner, ...others],
          createdAt: room.createdAt.toISOString(),
        };
        await emit(tx, 'chat.room.created', data, traceOf(request));
        return roomView(room);
      }),
  );

  app.get<{ Querystring: Static<typeof PageQuery> }>(
    '/rooms',
    {
      ...auth,
      schema: routeSchema({
        tag: 'rooms',
        summary: 'The rooms you are a member of, newest first',
        querystring: PageQuery,
        paged: true,
        success: { status: 200, description: 'One page of rooms', body: pageOf(RoomSummary) },
      }),
    },
    async (request) => {
      return fetchPage(
        request,
        ({ idBefore, take }) =>
          db.room.findMany({
            where: { members: { some: { userId: userOf(request).sub } }, ...idBefore },
            orderBy: { id: 'desc' },
            take,
          }),
        roomSummary,
      );
    },
  );

  app.get<{ Params: Static<typeof RoomParams> }>(
    '/rooms/:roomId',
    {
      ...auth,
      schema: routeSchema({
        tag: 'rooms',
        summary: 'A room and its members (members only)',
        params: RoomParams,
        success: { status: 200, description: 'The room', body: RoomView },
        errors: member,
      }),
    },
    async (request) => {
      const { roomId } = request.params;
      await membership(db, roomId, userOf(request).sub);
      const room = await db.room.findUniqueOrThrow({
        where: { id: roomId },
        include: { members: { orderBy: { joinedAt: 'asc' } } },
      });
      return roomView(room);
    },
  );

  app.post<{ Params: Static<typeof RoomParams>; Body: Static<typeof AddMemberInput> }>(
    '/rooms/:roomId/members',
    {
      ...auth,
      schema: routeSchema({
        tag: 'members',
        summary: 'Add a member (owner only; event chat.member.joined)',
        params: RoomParams,
        body: AddMemberInput,
        success: { status: 201, description: 'The member (also when already one)', body: MemberAddedView },
        errors: [...member, roomOwnerOnly],
        idempotent: true,
      }),
    },
    (request, reply) =>
      mutations.run(request, reply, 201, async (tx) => {
        const { roomId } = request.params;
        const by = userOf(request).sub;
        await ownership(tx, roomId, by, 'add members');
        const { userId } = request.body;
        const added = await tx.roomMember.createMany({ data: [{ roomId, userId }], skipDuplicates: true });
        // Adding a member twice changes nothing and emits nothing.
        if (added.count === 1) await emit(tx, 'chat.member.joined', { roomId, userId, by, at: at() }, traceOf(request));
        return { roomId, userId };
      }),
  );

  app.delete<{ Params: Static<typeof MemberParams> }>(
    '/rooms/:roomId/members/:userId',
    {
      ...auth,
      schema: routeSchema({
        tag: 'members',
        summary: 'Leave, or remove a member as the owner (event chat.member.left)',
        params: MemberParams,
        success: { status: 204, description: 'Removed', body: null },
        errors: [...member, roomOwnerOnly, memberNotFound, ChatErrors.roomOwnerCannotLeave],
        idempotent: true,
      }),
    },
    (request, reply) =>
      mutations.run(request, reply, 204, async (tx) => {
        const { roomId, userId } = request.params;
        const by = userOf(request).sub;
        // Anyone may leave; only the owner removes others.
        if (userId !== by) await ownership(tx, roomId, by, 'remove other members');
        const target = await membership(tx, roomId, userId).catch(() => {
          throw ChatErrors.memberNotFound.error(`${userId} is not a member of this room`);
        });
        if (target.role === 'owner') {
          throw ChatErrors.roomOwnerCannotLeave.error('the owner cannot leave or be removed');
        }
        await tx.roomMember.delete({ where: { roomId_userId: { roomId, userId } } });
        await emit(tx, 'chat.member.left', { roomId, userId, by, at: at() }, traceOf(request));
        return undefined;
      }),
  );

  app.post<{ Params: Static<typeof RoomParams>; Body: Static<typeof MessageInput> }>(
    '/rooms/:roomId/messages',
    {
      ...auth,
      schema: routeSchema({
        tag: 'messages',
        summary: 'Send a message (members only; event chat.message.sent)',
        params: RoomParams,
        body: MessageInput,
        success: { status: 201, description: 'The message', body: MessageView },
        errors: member,
        idempotent: true,
      }),
    },
    (request, reply) =>
      mutations.single(request, reply, 201, async (sql) => {
        const { roomId } = request.params;
        const senderId = userOf(request).sub;
        const message: Message = {
          id: uuidv7(),
          roomId,
          senderId,
          body: request.body.body,
          createdAt: now(),
          editedAt: null,
        };
        const data = { roomId, messageId: message.id, senderId, body: message.body, sentAt: at() };
        const row = { message, event: outboxMessage('chat.message.sent', data, traceOf(request)).message };
        if (!(await insertMessage(sql, row))) {
          // Nothing written: not a member. Say why (404 unknown room, 403 not a member)…
          await membership(db, roomId, senderId);
          // …unless they joined in between: then the message is theirs to send.
          if (!(await insertMessage(sql, row))) {
            throw roomForbidden.error('only members of this room may do this');
          }
        }
        return messageView(message);
      }),
  );

  app.get<{ Params: Static<typeof RoomParams>; Querystring: Static<typeof PageQuery> }>(
    '/rooms/:roomId/messages',
    {
      ...auth,
      schema: routeSchema({
        tag: 'messages',
        summary: "A room's messages, newest first (members only)",
        params: RoomParams,
        querystring: PageQuery,
        paged: true,
        success: { status: 200, description: 'One page of messages', body: pageOf(MessageView) },
        errors: member,
      }),
    },
    async (request) => {
      const { roomId } = request.params;
      await membership(db, roomId, userOf(request).sub);
      return fetchPage(
        request,
        ({ idBefore, take }) => db.message.findMany({ where: { roomId, ...idBefore }, orderBy: { id: 'desc' }, take }),
        messageView,
      );
    },
  );

  app.patch<{ Params: Static<typeof MessageParams>; Body: Static<typeof MessageInput> }>(
    '/rooms/:roomId/messages/:messageId',
    {
      ...auth,
      schema: routeSchema({
        tag: 'messages',
        summary: 'Edit your message (event chat.message.edited)',
        params: MessageParams,
        body: MessageInput,
        success: { status: 200, description: 'The edited message', body: MessageView },
        errors: [...member, messageNotFound, messageForbidden],
        idempotent: true,
      }),
    },
    (request, reply) =>
      mutations.run(request, reply, 200, async (tx) => {
        const { roomId, messageId } = request.params;
        const userId = userOf(request).sub;
        await membership(tx, roomId, userId);
        const message = await messageIn(tx, roomId, messageId);
        if (message.senderId !== userId) {
          throw ChatErrors.messageForbidden.error('only the sender may edit a message');
        }
        const edited = await tx.message.update({
          where: { id: messageId },
          data: { body: request.body.body, editedAt: now() },
        });
        const data = { roomId, messageId, senderId: userId, body: edited.body, editedAt: at() };
        await emit(tx, 'chat.message.edited', data, traceOf(request));
        return messageView(edited);
      }),
  );

  app.delete<{ Params: Static<typeof MessageParams> }>(
    '/rooms/:roomId/messages/:messageId',
    {
      ...auth,
      schema: routeSchema({
        tag: 'messages',
        summary: 'Delete a message: its sender or the room owner (event chat.message.deleted)',
        params: MessageParams,
        success: { status: 204, description: 'Deleted', body: null },
        errors: [...member, messageNotFound, messageForbidden],
        idempotent: true,
      }),
    },
    (request, reply) =>
      mutations.run(request, reply, 204, async (tx) => {
        const { roomId, messageId } = request.params;
        const userId = userOf(request).sub;
        const member = await membership(tx, roomId, userId);
        const message = await messageIn(tx, roomId, messageId);
        if (message.senderId !== userId && member.role !== 'owner') {
          throw ChatErrors.messageForbidden.error('only the sender or the room owner may delete a message');
        }
        await tx.message.delete({ where: { id: messageId } });
        await emit(
          tx,
          'chat.message.deleted',
          { roomId, messageId, deletedBy: userId, deletedAt: at() },
          traceOf(request),
        );
        return undefined;
      }),
  );

  app.post<{ Params: Static<typeof RoomParams>; Body: Static<typeof ReadInput> }>(
    '/rooms/:roomId/read',
    {
      ...auth,
      schema: routeSchema({
        tag: 'messages',
        summary: 'Mark messages read up to one (event chat.read when it moves forward)',
        params: RoomParams,
        body: ReadInput,
        success: { status: 200, description: 'Your read position in the room', body: ReadView },
        errors: [...member, messageNotFound],
        idempotent: true,
      }),
    },
    (request, reply) =>
      mutations.run(request, reply, 200, async (tx) => {
        const { roomId } = request.params;
        const { messageId } = request.body;
        const userId = userOf(request).sub;
        const member = await membership(tx, roomId, userId);
        await messageIn(tx, roomId, messageId);
        // Receipts only move forward (ids are time-ordered); an older one is acknowledged and ignored.
        const advanced = member.lastReadMessageId === null || messageId > member.lastReadMessageId;
        if (advanced) {
          await tx.roomMember.update({
            where: { roomId_userId: { roomId, userId } },
            data: { lastReadMessageId: messageId },
          });
          await emit(tx, 'chat.read', { roomId, userId, messageId, readAt: at() }, traceOf(request));
        }
        return { roomId, lastReadMessageId: advanced ? messageId : member.lastReadMessageId };
      }),
  );

  app.post<{ Params: Static<typeof RoomParams> }>(
    '/rooms/:roomId/typing',
    {
      ...auth,
      schema: routeSchema({
        tag: 'messages',
        summary: 'Say you are typing (event chat.typing; throttled per user and room, not stored)',
        params: RoomParams,
        success: { status: 202, description: 'Published', body: TypingView },
        errors: [...member, ChatErrors.typingThrottled],
      }),
    },
    async (request, reply) => {
      const { roomId } = request.params;
      const userId = userOf(request).sub;
      await membership(db, roomId, userId);
      // Not stored: published straight to Kafka, at most once per interval per user and room. The
      // throttle's marks are in Redis; while Redis fails, indicators pass unthrottled, as rate
      // limits do, rather than fail.
      const key = `${deps.redisKeyPrefix}typing:${roomId}:${userId}`;
      const first = await deps.redis.set(key, '1', 'PX', deps.typingIntervalMs, 'NX').catch((err: unknown) => {
        request.log.warn({ err }, 'typing throttle unavailable (Redis); publishing unthrottled');
        return 'OK' as const;
      });
      if (first === null) {
        const ttl = await deps.redis.pttl(key);
        void reply.header('retry-after', Math.max(1, Math.ceil(ttl / 1000)));
        throw ChatErrors.typingThrottled.error(`typing is published at most every ${deps.typingIntervalMs} ms`);
      }
      await deps.publish('chat.typing', { roomId, userId, at: at() }, traceOf(request));
      return reply.status(202).send({ published: true });
    },
  );

  app.get<{ Params: Static<typeof RoomParams> }>(
    '/rooms/:roomId/subscription-token',
    {
      ...auth,
      schema: routeSchema({
        tag: 'rooms',
        summary: "A short-lived token to subscribe to the room's gateway channel (members only)",
        params: RoomParams,
        success: { status: 200, description: 'The token and its channel', body: SubscriptionTokenView },
        errors: member,
      }),
    },
    async (request) => {
      const { roomId } = request.params;
      const userId = userOf(request).sub;
      await membership(db, roomId, userId);
      const channel = `chat:${roomId}`;
      const ttl = deps.subscriptionTokenTtlSeconds;
      const token = await signSubscriptionToken(deps.subscriptionSecret, userId, channel, ttl);
      return { channel, token, expiresAt: new Date(now().getTime() + ttl * 1000).toISOString() };
    },
  );

  return app;
}
