import { randomBytes } from 'node:crypto';
import { RippleError } from '@ripple/errors';
import { newEpoch } from '@ripple/registry';
import type { StreamPosition } from '@ripple/registry';
import type { Logger } from '@ripple/telemetry';
import type { ChannelFrame, Subscriber } from './hub.js';
import type { FeedMetrics } from './feed-metrics.js';
import { eventFrameHead } from './protocol.js';
import type { FramePosition } from './sink.js';
import { Subscriptions } from './subscriptions.js';
import type { DerivedChannels, SubscriptionDeps } from './subscriptions.js';

/** Where a node learns whom a user follows (post-service owns the graph: followees.ts). */
export interface FolloweeSource {
  /**
   * The ids `userId` follows (not themselves), read with the user's own access token
   * `credential`. Throws RippleError GW_FEED_UNAVAILABLE when the source does not answer.
   */
  following(userId: string, credential: string): Promise<readonly string[]>;
}

export interface LiveFeedsDeps {
  /** The hub, history and directory the node's own reads of `creator:` and `user:` channels use. */
  readonly subscriptions: SubscriptionDeps;
  readonly source: FolloweeSource;
  readonly metrics: FeedMetrics;
  readonly logger: Logger;
  /** For feed epochs (ms since the epoch). */
  readonly now?: () => number;
}

/** A follow change, with when it was made (its event's `time`, ISO 8601). */
type FollowChange = {
  readonly type: 'user.followed' | 'user.unfollowed';
  readonly followeeId: string;
  readonly time: string;
};

/**
 * How many of a creator's latest history entries a follow applied to a feed looks back over, for
 * posts made after the follow but routed before its event (they sit on other Kafka partitions).
 */
export const FOLLOW_LOOKBACK = 32;

/** One `feed:<user>` subscription of one connection. */
interface Feed {
  readonly channel: string;
  readonly userId: string;
  readonly subscriber: Subscriber;
  /** This subscription's own epoch: feed frames exist nowhere else, so no other subscription shares it. */
  epoch: string;
  /** The offset of the last frame handed out (1, 2, 3… within the epoch). */
  offset: number;
  /** Whom it shows: the user and everyone they follow. */
  readonly followees: Set<string>;
  /** Follow changes that came while the followee list was loading; applied on top of it, in order. */
  early: FollowChange[] | undefined;
  /** Settles true once `followees` is complete (loaded, `early` applied), false if joining failed. */
  readonly loaded: Promise<boolean>;
  /** Creators just followed whose recent history is being read (`catchUp`): their live frames wait here. */
  catchingUp: Map<string, ChannelFrame[]> | undefined;
  /**
   * Per creator, the last history entry a catch-up went over: a live frame of the creator at or
   * before it (same epoch) was handed out by the catch-up already, or was older than the follow.
   * It can come after the catch-up read it (history is appended before frames are delivered, and
   * delivery waits for the send budget or another node's message): dropped, then the mark goes.
   */
  caughtUp: Map<string, { epoch: string; offset: number }> | undefined;
}

const FEED = /^feed:([A-Za-z0-9_-]{1,128})$/;
const EVENT_KEY = ',"event":';

/**
 * The live feed, fanned out on read. A `feed:<user>` frame is never stored or routed: this node
 * reads `creator:<id>` for every followee of its connected feed subscribers (once per creator,
 * however many of its sockets follow them) and `user:<id>` of each such subscriber (where
 * `user.followed`/`user.unfollowed` arrive), and re-labels each creator frame, as the hub hands
 * it out in the creator channel's order, for the sockets that follow that creator. A creator's
 * post therefore costs what any `creator:` event costs (history append, one message per node
 * holding it), never a write per follower. Followee sets are loaded on join from post-service and
 * kept fresh from the user's follow events. Single node by design: each node holds its own.
 */
export class LiveFeeds implements DerivedChannels {
  /** Feeds on this node by user id. */
  private readonly byUser = new Map<string, Set<Feed>>();
  /** Feeds on this node that show a creator, by creator id. */
  private readonly readers = new Map<string, Set<Feed>>();
  /** This node's own reads of the `creator:` and `user:` channels the feeds are made of. */
  private readonly upstream: Subscriptions;
  private readonly now: () => number;
  private lastEpochMicros = 0;

  constructor(private readonly deps: LiveFeedsDeps) {
    this.now = deps.now ?? Date.now;
    this.upstream = new Subscriptions(deps.subscriptions, {
      event: (frame) => this.onFrame(frame),
      gap: (channel) => this.onGap(channel),
    });
  }

  owns(channel: string): boolean {
    return channel.startsWith('feed:');
  }

  /** Creator channels this node reads for its feeds (the `gateway_feed_creators` gauge). */
  get creatorCount(): number {
    return this.readers.size;
  }

  async join(channel: string, subscriber: Subscriber, credential: string): Promise<StreamPosition> {
    const userId = FEED.exec(channel)?.[1];
    if (userId === undefined) throw new RippleError('GW_CHANNEL_INVALID', `"${channel}" is not a feed channel`);
    let settle: (loaded: boolean) => void = () => undefined;
    const feed: Feed = {
      channel,
      userId,
      subscriber,
      epoch: this.nextEpoch(),
      offset: 0,
      followees: new Set(),
      early: [],
      loaded: new Promise((resolve) => (settle = resolve)),
      catchingUp: undefined,
      caughtUp: undefined,
    };
    const feeds = this.byUser.get(userId) ?? new Set();
    const others = [...feeds];
    this.byUser.set(userId, feeds);
    feeds.add(feed);
    // Frames handed out while joining wait in the subscriber until it goes live after the ack,
    // so the position returned is the one before the first of them.
    const start = this.positionOf(feed);
    const stop = this.deps.metrics.loadSeconds.startTimer();
    try {
      // The user's own channel first: a follow made while the list loads is kept in `early`.
      await this.upstream.add(`user:${userId}`, undefined);
      const shared = await this.sharedFollowees(feeds, others);
      const ids = shared ?? (await this.deps.source.following(userId, credential));
      if (!feeds.has(feed)) {
        settle(false);
        return start; // left while loading
      }
      await Promise.all([userId, ...ids].map((id) => this.show(feed, id)));
      for (const change of feed.early ?? []) await this.apply(feed, change);
      feed.early = undefined;
      settle(true);
      stop({ result: shared ? 'shared' : 'ok' });
      return start;
    } catch (err) {
      settle(false);
      stop({ result: 'error' });
      await this.leave(channel, subscriber);
      throw err;
    }
  }

  /**
   * The followees of another feed of the same user on this node, once it is complete, instead of
   * a load from post-service: that feed is kept fresh by the same follow events. Its list
   * already includes every change this feed may have queued in `early` (those came after this
   * feed joined `user:`, so after the other did); re-applying them on top changes nothing.
   * Undefined when there is none, or none of them loaded (this feed then loads its own).
   */
  private async sharedFollowees(feeds: Set<Feed>, others: readonly Feed[]): Promise<string[] | undefined> {
    for (const other of others) {
      if (!(await other.loaded) || !feeds.has(other)) continue;
      return [...other.followees];
    }
    return undefined;
  }

  async leave(channel: string, subscriber: Subscriber): Promise<void> {
    const userId = FEED.exec(channel)?.[1] ?? '';
    const feeds = this.byUser.get(userId);
    const feed = [...(feeds ?? [])].find((f) => f.subscriber === subscriber);
    if (!feeds || !feed) return;
    feeds.delete(feed);
    const left = [...feed.followees].map((id) => this.hide(feed, id));
    if (feeds.size === 0) {
      this.byUser.delete(userId);
      left.push(this.upstream.remove(`user:${userId}`));
    }
    await Promise.all(left);
  }

  private positionOf(feed: Feed): StreamPosition {
    return { offset: String(feed.offset), epoch: feed.epoch };
  }

  /** A fresh epoch, later than every one this node gave before (clients compare them). */
  private nextEpoch(): string {
    this.lastEpochMicros = Math.max(this.now() * 1000, this.lastEpochMicros + 1);
    return newEpoch(this.lastEpochMicros, randomBytes(5).toString('hex'));
  }

  /** Starts showing `creatorId` in `feed`; the node reads the creator's channel while any feed shows it. */
  private async show(feed: Feed, creatorId: string): Promise<void> {
    if (feed.followees.has(creatorId)) return;
    feed.followees.add(creatorId);
    let readers = this.readers.get(creatorId);
    if (readers) {
      readers.add(feed);
      return;
    }
    readers = new Set([feed]);
    this.readers.set(creatorId, readers);
    try {
      await this.upstream.add(`creator:${creatorId}`, undefined);
    } catch (err) {
      // Without the creator's channel the feeds miss its posts: say so, so they refetch.
      this.deps.logger.warn({ err, creatorId }, 'could not read a creator channel for feeds');
      for (const reader of readers) this.restart(reader);
    }
  }

  private async hide(feed: Feed, creatorId: string): Promise<void> {
    if (!feed.followees.delete(creatorId)) return;
    feed.caughtUp?.delete(creatorId);
    const readers = this.readers.get(creatorId);
    if (!readers?.delete(feed) || readers.size > 0) return;
    this.readers.delete(creatorId);
    await this.upstream.remove(`creator:${creatorId}`);
  }

  private async apply(feed: Feed, change: FollowChange): Promise<void> {
    const creatorId = change.followeeId;
    // One's own posts stay in one's feed whatever the follow events say.
    if (creatorId === feed.userId) return;
    if (change.type === 'user.unfollowed') return this.hide(feed, creatorId);
    if (feed.followees.has(creatorId)) return;
    // The creator's live frames wait while its recent history is read, so the feed gets its
    // posts in the creator's order: those from history first, then the live ones.
    const waiting: ChannelFrame[] = [];
    const catchingUp = (feed.catchingUp ??= new Map());
    catchingUp.set(creatorId, waiting);
    try {
      await this.show(feed, creatorId);
      await this.catchUp(feed, change, waiting);
    } catch (err) {
      this.deps.logger.warn({ err, creatorId }, 'could not read a followed creator history for a feed');
    } finally {
      catchingUp.delete(creatorId);
      const fresh = waiting.filter((frame) => !this.caughtUpWith(feed, creatorId, frame));
      for (const frame of fresh) this.deliverTo(feed, eventJsonOf(frame));
      this.deps.metrics.deliveries.inc(fresh.length);
    }
  }

  /**
   * Hands `feed` the creator's posts made after the follow (its event's time) that the node
   * routed before it applied the follow: a post made right after the follow sits on another Kafka
   * partition and may be routed first. Reads the last FOLLOW_LOOKBACK entries of the creator's
   * history, up to the first live frame waiting (that one and the next come live).
   */
  private async catchUp(feed: Feed, change: FollowChange, waiting: readonly ChannelFrame[]): Promise<void> {
    const channel = `creator:${change.followeeId}`;
    const { history } = this.deps.subscriptions;
    const top = await history.position(channel);
    const from = Math.max(0, Number(top.offset) - FOLLOW_LOOKBACK);
    const recent = await history.since(channel, { offset: String(from), epoch: top.epoch }, FOLLOW_LOOKBACK);
    const followedAt = Date.parse(change.time);
    const live = waiting[0];
    for (const entry of recent.entries) {
      if (live && (live.epoch !== recent.position.epoch || Number(entry.offset) >= Number(live.offset))) break;
      (feed.caughtUp ??= new Map()).set(change.followeeId, {
        epoch: recent.position.epoch,
        offset: Number(entry.offset),
      });
      const { time } = JSON.parse(entry.payload) as { time?: string };
      // Strictly after: a post of the same millisecond may have been made just before it.
      if (time === undefined || !(Date.parse(time) > followedAt)) continue;
      this.deliverTo(feed, entry.payload);
      this.deps.metrics.deliveries.inc();
      this.deps.metrics.caughtUp.inc();
    }
  }

  /**
   * Whether `frame` of `creatorId` is at or before the last entry `feed`'s catch-up went over (see
   * `Feed.caughtUp`): true drops it. The first frame past the mark (or of another epoch) clears it.
   */
  private caughtUpWith(feed: Feed, creatorId: string, frame: ChannelFrame): boolean {
    const mark = feed.caughtUp?.get(creatorId);
    if (!mark) return false;
    if (frame.epoch === mark.epoch && Number(frame.offset) <= mark.offset) return true;
    feed.caughtUp?.delete(creatorId);
    return false;
  }

  private onFrame(frame: ChannelFrame): void {
    const colon = frame.channel.indexOf(':');
    const kind = frame.channel.slice(0, colon);
    const id = frame.channel.slice(colon + 1);
    const eventJson = eventJsonOf(frame);
    if (kind === 'creator') {
      const readers = this.readers.get(id);
      if (!readers) return;
      // Each follower's frame differs only in its head (channel, offset, epoch): the event is
      // encoded to UTF-8 once here, and each frame's bytes are its head and these spliced.
      const eventBytes = Buffer.from(eventJson, 'utf8');
      let delivered = 0;
      for (const feed of readers) {
        const waiting = feed.catchingUp?.get(id);
        if (waiting) waiting.push(frame);
        else if (!this.caughtUpWith(feed, id, frame)) {
          this.deliverTo(feed, eventJson, eventBytes);
          delivered += 1;
        }
      }
      this.deps.metrics.deliveries.inc(delivered);
      return;
    }
    const feeds = this.byUser.get(id);
    if (kind !== 'user' || !feeds) return;
    const change = followChangeOf(eventJson);
    if (!change) return;
    for (const feed of feeds) {
      if (feed.early) feed.early.push(change);
      else
        this.apply(feed, change).catch((err: unknown) =>
          this.deps.logger.warn({ err, userId: id }, 'could not apply a follow change to a feed'),
        );
    }
  }

  /** Hands `feed` the event `eventJson` (its UTF-8 `eventBytes`) as its next frame (the caller counts it). */
  private deliverTo(feed: Feed, eventJson: string, eventBytes = Buffer.from(eventJson, 'utf8')): void {
    feed.offset += 1;
    const offset = String(feed.offset);
    const head = eventFrameHead(feed.channel, offset, feed.epoch);
    const feedFrame: ChannelFrame & FramePosition = {
      channel: feed.channel,
      offset,
      epoch: feed.epoch,
      frame: `${head}${eventJson}}`,
      bytes: splice(head, eventBytes),
    };
    feed.subscriber.deliver(feedFrame);
  }

  /** A followed creator's (or the user's own) channel lost events: every feed showing it starts over. */
  private onGap(channel: string): void {
    const [kind, id = ''] = channel.split(':');
    const feeds = kind === 'creator' ? this.readers.get(id) : this.byUser.get(id);
    for (const feed of feeds ?? []) this.restart(feed);
  }

  /** Gives `feed` a new epoch and tells its subscriber with a `gap`: refetch GET /me/feed. */
  private restart(feed: Feed): void {
    feed.epoch = this.nextEpoch();
    feed.offset = 0;
    this.deps.metrics.gaps.inc();
    feed.subscriber.gap(feed.channel, this.positionOf(feed));
  }
}

const CLOSE = Buffer.from('}');

/** The bytes of an event frame: its `head` (eventFrameHead), the event's `event` bytes, `}`. */
function splice(head: string, event: Buffer): Buffer {
  const headLength = Buffer.byteLength(head);
  const bytes = Buffer.allocUnsafe(headLength + event.length + CLOSE.length);
  bytes.write(head, 0, headLength, 'utf8');
  event.copy(bytes, headLength);
  CLOSE.copy(bytes, headLength + event.length);
  return bytes;
}

/** The event JSON inside an event frame's text (`{"op":"event",…,"event":<event>}`). */
function eventJsonOf(frame: ChannelFrame): string {
  return frame.frame.slice(frame.frame.indexOf(EVENT_KEY) + EVENT_KEY.length, -1);
}

/** The follow change an event of a `user:` channel carries, if it is one. */
function followChangeOf(eventJson: string): FollowChange | undefined {
  // Cheap pre-check: most `user:` traffic is notifications and presence.
  if (!eventJson.includes('"user.followed"') && !eventJson.includes('"user.unfollowed"')) return undefined;
  const event = JSON.parse(eventJson) as { type: string; time: string; data: { followeeId: string } };
  if (event.type !== 'user.followed' && event.type !== 'user.unfollowed') return undefined;
  return { type: event.type, followeeId: event.data.followeeId, time: event.time };
}
