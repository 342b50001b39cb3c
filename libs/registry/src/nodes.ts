/** Which gateway nodes are alive. A node that stops heartbeating disappears after its TTL. */
export interface NodeRegistry {
  /** Adds the node or extends its lease by `ttlMs` from now. */
  heartbeat(nodeId: string, ttlMs: number): Promise<void>;
  /** Removes the node at once (graceful shutdown). */
  leave(nodeId: string): Promise<void>;
  /** The nodes whose lease has not expired, sorted by id. */
  liveNodes(): Promise<string[]>;
}
