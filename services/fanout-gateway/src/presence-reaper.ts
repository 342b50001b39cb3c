import type { DeadNode, Directory, NodeRoster } from '@ripple/registry';
import type { Logger } from '@ripple/telemetry';

export interface PresenceReaperDeps {
  readonly roster: NodeRoster;
  readonly directory: Pick<Directory, 'disconnect'>;
  /** Publishes `presence.offline` for a user whose last connection was on the dead node. */
  readonly publishOffline: (offline: { userId: string; connectionId: string; nodeId: string }) => Promise<void>;
  readonly logger: Logger;
}

/**
 * Announces what a crashed node never will: its users going offline. Every live node sweeps on its
 * heartbeat; the roster hands each dead node to one sweeper only, which removes the dead node's
 * connections from presence (their leases are long: see LeasedDirectory) and publishes
 * `presence.offline` once for every user of that node left with no live connection elsewhere.
 */
export class PresenceReaper {
  constructor(private readonly deps: PresenceReaperDeps) {}

  /** Resolves with the users announced offline. */
  async sweep(): Promise<string[]> {
    const announced: string[] = [];
    for (const dead of await this.deps.roster.claimDead()) {
      try {
        announced.push(...(await this.announce(dead)));
      } finally {
        // The dead node, if it was only stalled, registers its connections again after this.
        await this.deps.roster.reaped(dead.nodeId);
      }
    }
    return announced;
  }

  /**
   * At start-up: reaps this node id's previous incarnation, if it crashed and this process took
   * its place before its lease ran out (a pod restarted in place keeps its name, hence NODE_ID).
   */
  async reapPrevious(nodeId: string): Promise<string[]> {
    const previous = await this.deps.roster.claimPrevious(nodeId);
    return previous ? this.announce(previous) : [];
  }

  private async announce(dead: DeadNode): Promise<string[]> {
    const announced: string[] = [];
    const byUser = new Map<string, string[]>();
    for (const c of dead.connections) byUser.set(c.userId, [...(byUser.get(c.userId) ?? []), c.connectionId]);
    for (const [userId, ids] of byUser) {
      try {
        let offline = false;
        for (const id of ids) offline = await this.deps.directory.disconnect(userId, id);
        if (!offline) continue;
        await this.deps.publishOffline({ userId, connectionId: ids[0] ?? userId, nodeId: dead.nodeId });
        announced.push(userId);
      } catch (err) {
        // The claim is spent: this user's offline is lost (their presence entry still lapses).
        this.deps.logger.warn({ err, userId, node: dead.nodeId }, 'could not announce a dead node’s user offline');
      }
    }
    this.deps.logger.info({ node: dead.nodeId, users: byUser.size }, 'reaped a dead node');
    return announced;
  }
}
