import type { AnyEvent, EventOf } from '@ripple/events';
import { uuidv7 } from '@ripple/db';
import type { Emit, TraceContext } from '@ripple/service';
import type { Tx } from './db.js';
import { emitUnreadCounts } from './unread-counts.js';

type Kind = EventOf<'notification.created'>['data']['kind'];

/** `@userId` mentions in a text, in order, without duplicates (at most 20). */
export function mentionsIn(text: string): string[] {
  const ids = [...text.matchAll(/(?<![A-Za-z0-9_@-])@([A-Za-z0-9_-]{1,128})/g)].map((m) => m[1] as string);
  return [...new Set(ids)].slice(0, 20);
}

const snippet = (text: string) => (text.length > 80 ? `${text.slice(0, 79)}…` : text);

/**
 * Turns one post or chat event into notifications within the caller's transaction and returns
 * the users whose unread count changed. Never notifies users of their own actions.
 */
export class Notifier {
  /** New unread notifications per user. */
  private readonly created = new Map<string, number>();

  constructor(
    private readonly tx: Tx,
    private readonly emit: Emit,
    private readonly now: Date,
    private readonly trace: TraceContext,
  ) {}

  async apply(event: AnyEvent): Promise<Set<string>> {
    switch (event.type) {
      case 'post.created':
        await this.mentions(event.data.body, event.data.authorId, event.data.postId, 'in a post');
        break;
      case 'post.liked':
        if (event.data.userId !== event.data.postAuthorId) {
          await this.create(
            event.data.postAuthorId,
            'post.liked',
            event.data.userId,
            event.data.postId,
            `${event.data.userId} liked your post`,
          );
        }
        break;
      case 'comment.created': {
        const d = event.data;
        if (d.authorId !== d.postAuthorId) {
          await this.create(
            d.postAuthorId,
            'comment.created',
            d.authorId,
            d.postId,
            `${d.authorId} commented: ${snippet(d.body)}`,
          );
        }
        // The post's author already has the comment notification.
        await this.mentions(d.body, d.authorId, d.postId, 'in a comment', (u) => u !== d.postAuthorId);
        break;
      }
      case 'chat.room.created':
        await this.tx.roomMember.createMany({
          data: event.data.memberIds.map((userId) => ({ roomId: event.data.roomId, userId })),
          skipDuplicates: true,
        });
        break;
      case 'chat.member.joined':
        await this.tx.roomMember.createMany({
          data: [{ roomId: event.data.roomId, userId: event.data.userId }],
          skipDuplicates: true,
        });
        break;
      case 'chat.member.left':
        await this.tx.roomMember.deleteMany({ where: { roomId: event.data.roomId, userId: event.data.userId } });
        break;
      case 'chat.message.sent':
        await this.chatMessage(event.data);
        break;
      case 'post.updated':
      case 'post.deleted':
      case 'post.unliked':
      case 'comment.deleted':
      case 'chat.message.edited':
      case 'chat.message.deleted':
      case 'chat.typing':
      case 'chat.read':
      case 'notification.created':
      case 'notification.read':
      case 'notification.unread_count':
      case 'presence.online':
      case 'presence.offline':
      case 'user.followed':
      case 'user.unfollowed':
        // Nobody is notified of these (and an edit does not notify mentions a second time; follow
        // events are on user.events.v1, which this service does not consume).
        break;
    }
    // Last: the counts' row locks are held to the commit, so the shorter after them the better.
    await emitUnreadCounts(this.tx, this.emit, this.created, this.trace);
    return new Set(this.created.keys());
  }

  private async create(userId: string, kind: Kind, actorId: string, subjectId: string, text: string) {
    const n = await this.tx.notification.create({
      data: { id: uuidv7(), userId, kind, actorId, subjectId, text, createdAt: this.now, updatedAt: this.now },
    });
    const data = { notificationId: n.id, userId, kind, actorId, subjectId, text, createdAt: n.createdAt.toISOString() };
    await this.emit(this.tx, 'notification.created', data, this.trace);
    this.created.set(userId, (this.created.get(userId) ?? 0) + 1);
  }

  private async mentions(
    text: string,
    actorId: string,
    subjectId: string,
    where: string,
    allowed: (userId: string) => boolean = () => true,
  ) {
    for (const userId of mentionsIn(text)) {
      if (userId === actorId || !allowed(userId)) continue;
      await this.create(userId, 'mention', actorId, subjectId, `${actorId} mentioned you ${where}: ${snippet(text)}`);
    }
  }

  /**
   * Every member but the sender is notified; while a member's notification for the room is
   * unread, further messages fold into it (one notification per burst, with a count).
   * Mentions notify mentioned members only: a room's messages are not shown to outsiders.
   */
  private async chatMessage(d: EventOf<'chat.message.sent'>['data']) {
    // In user id order, as another message to the room locks the same notifications.
    const members = (
      await this.tx.roomMember.findMany({
        where: { roomId: d.roomId },
        select: { userId: true },
        orderBy: { userId: 'asc' },
      })
    ).map((m) => m.userId);
    for (const userId of members) {
      if (userId === d.senderId) continue;
      const open = await this.tx.notification.findFirst({
        where: { userId, kind: 'chat.message', subjectId: d.roomId, readAt: null },
        select: { id: true },
      });
      // Folds only into a notification still unread when the update runs, counting from the row
      // as it is then: a read that committed since this transaction found it makes the message a
      // new notification (the UPDATE waits for that read and checks its WHERE again).
      const folded =
        open !== null &&
        (await this.tx.$executeRaw`
          UPDATE notifications
          SET count = count + 1, text = (count + 1)::text || ' new messages in a chat',
              actor_id = ${d.senderId}, updated_at = ${this.now}
          WHERE id = ${open.id}::uuid AND read_at IS NULL`) === 1;
      if (!folded) {
        await this.create(userId, 'chat.message', d.senderId, d.roomId, `${d.senderId}: ${snippet(d.body)}`);
      }
    }
    await this.mentions(d.body, d.senderId, d.roomId, 'in a chat', (u) => members.includes(u));
  }
}
