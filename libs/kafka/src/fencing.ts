import kafkajs from 'kafkajs';
import type { GroupDescription, IMemberAssignment } from 'kafkajs';
import { RippleError, isRippleError } from '@ripple/errors';
import type { Logger } from '@ripple/telemetry';

const { AssignerProtocol } = kafkajs;

/** The code of the error a batch handler rejects with when its batch was fenced (see `fencedBatch`). */
export const BATCH_FENCED = 'KAFKA_BATCH_FENCED';

/**
 * The error for a batch that must not be handled because a later owner of its partition may have
 * handled it already (its fencing token is stale): the consumer drops the batch without retrying,
 * dead-lettering or committing it, and rejoins the group. A refusal, not a fault.
 */
export function fencedBatch(message: string, cause?: unknown): RippleError {
  return new RippleError(BATCH_FENCED, message, { retriable: false, refusal: true, cause });
}

/** True for the error of `fencedBatch`. */
export function isFencedBatch(err: unknown): boolean {
  return isRippleError(err) && err.code === BATCH_FENCED;
}

/** One group join of this consumer: what it was assigned, and the fencing token of that assignment. */
export interface GroupJoin {
  readonly memberId: string;
  /** True when the join assigned this partition to this consumer. */
  holds(topic: string, partition: number): boolean;
  /** The join's token, or undefined when it could not be confirmed (the group moved on: fenced). */
  readonly token: Promise<number | undefined>;
}

export interface AssignmentFenceOptions {
  /** Issues a token greater than every one issued before for this group (see @ripple/registry FenceTokens). */
  readonly next: () => Promise<number>;
  readonly logger: Logger;
  /** Wait (ms) before asking again after the issuer or the coordinator failed. */
  readonly retryMs: number;
}

/**
 * Fencing tokens of a consumer's partition assignments. At each group join a token is issued, then
 * the group is described: the token holds only if the group is still Stable with this member
 * holding the same assignment, so no later generation had started when the token was issued, and
 * the owner of any later generation gets a greater one. kafkajs does not expose the generation id
 * (neither its API nor the GROUP_JOIN event); a token issued at the join without that check would
 * be unsound: a process paused between its join and the issue gets a token greater than the next
 * owner's. kafkajs hands a batch to `eachBatch` only under the join it was fetched in (it stops its
 * fetchers, and waits for their batches, before it joins again), so the current join when a batch
 * arrives is the batch's.
 */
export class AssignmentFence {
  private latest: GroupJoin | undefined;
  private closed = false;
  constructor(private readonly opts: AssignmentFenceOptions) {}

  /** The latest join (the one of the batches `eachBatch` is given now), if any. */
  get current(): GroupJoin | undefined {
    return this.latest;
  }

  /**
   * Records a join (kafkajs GROUP_JOIN: `memberId`, `memberAssignment`); `describe` is the
   * consumer's `describeGroup`. Returns the new join and the one before it.
   */
  joined(
    memberId: string,
    assignment: IMemberAssignment,
    describe: () => Promise<GroupDescription>,
  ): { join: GroupJoin; previous: GroupJoin | undefined } {
    const previous = this.latest;
    const held = new Set(Object.entries(assignment).flatMap(([topic, ps]) => ps.map((p) => `${topic}/${p}`)));
    let settle: (token: number | undefined) => void = () => undefined;
    const join: GroupJoin = {
      memberId,
      holds: (topic, partition) => held.has(`${topic}/${partition}`),
      token: new Promise((resolve) => (settle = resolve)),
    };
    if (this.closed) settle(undefined);
    else {
      this.latest = join;
      // Never rejects: a failure is retried until the join is confirmed or superseded.
      void this.confirm(join, held, describe).then(settle);
    }
    return { join, previous };
  }

  /** Ends the confirmation in progress (the consumer stops): its join's batches are fenced. */
  close(): void {
    this.closed = true;
    this.latest = undefined;
  }

  private async confirm(
    join: GroupJoin,
    held: ReadonlySet<string>,
    describe: () => Promise<GroupDescription>,
  ): Promise<number | undefined> {
    for (;;) {
      if (this.latest !== join) return undefined;
      try {
        const token = await this.opts.next();
        const group = await describe();
        if (this.latest !== join) return undefined;
        const member = group.members.find((m) => m.memberId === join.memberId);
        const assigned = member
          ? // A member assigned nothing has an empty assignment (decoded as null).
            (AssignerProtocol.MemberAssignment.decode(member.memberAssignment)?.assignment ?? {})
          : undefined;
        const same =
          assigned !== undefined &&
          Object.entries(assigned)
            .flatMap(([topic, ps]) => ps.map((p) => `${topic}/${p}`))
            .sort()
            .join() === [...held].sort().join();
        if (group.state === 'Stable' && same) return token;
        this.opts.logger.info(
          { memberId: join.memberId, state: group.state, member: member !== undefined },
          'group moved on since this join: its batches are fenced',
        );
        return undefined;
      } catch (err) {
        this.opts.logger.warn({ err }, 'could not issue or confirm a fencing token; retrying');
        await new Promise((resolve) => setTimeout(resolve, this.opts.retryMs));
      }
    }
  }
}
