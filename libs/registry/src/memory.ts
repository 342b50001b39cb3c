import type { NodeRegistry } from './nodes.js';

/** In-memory NodeRegistry: single process only (unit tests, embedded mode). */
export class MemoryNodeRegistry implements NodeRegistry {
  private readonly leases = new Map<string, number>();
  constructor(private readonly now: () => number = Date.now) {}

  heartbeat(nodeId: string, ttlMs: number): Promise<void> {
    this.leases.set(nodeId, this.now() + ttlMs);
    return Promise.resolve();
  }

  leave(nodeId: string): Promise<void> {
    this.leases.delete(nodeId);
    return Promise.resolve();
  }

  liveNodes(): Promise<string[]> {
    const now = this.now();
    for (const [id, until] of this.leases) if (until <= now) this.leases.delete(id);
    return Promise.resolve([...this.leases.keys()].sort());
  }
}
