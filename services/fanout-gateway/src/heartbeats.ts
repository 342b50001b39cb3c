/** What the heartbeat needs of a socket (`ws` WebSocket). */
export interface Pingable {
  ping(): void;
  terminate(): void;
}

/**
 * The WebSocket heartbeat of every socket of a node on one timer: each socket is pinged once per
 * `intervalMs`, and one that did not answer the previous ping (no `pong`) is terminated. The
 * sockets are spread over `slots` groups, one group per tick, so a node with many sockets does
 * not ping them all at once. One timer and two set entries per socket replace a `setInterval`
 * (and its closure) per socket, part of what each idle connection cost in memory.
 */
export class Heartbeats {
  private readonly groups: Set<Pingable>[];
  private readonly unanswered = new Set<Pingable>();
  private readonly timer: NodeJS.Timeout;
  private current = 0;

  constructor(intervalMs: number, slots = 10) {
    this.groups = Array.from({ length: slots }, () => new Set<Pingable>());
    this.timer = setInterval(() => this.tick(), Math.max(1, Math.floor(intervalMs / slots)));
    this.timer.unref();
  }

  get size(): number {
    return this.groups.reduce((n, g) => n + g.size, 0);
  }

  /** Starts the heartbeat of a socket; its first ping goes one interval from now. */
  add(socket: Pingable): void {
    this.groups[this.current]?.add(socket);
  }

  /** The socket answered (`pong`). */
  answered(socket: Pingable): void {
    this.unanswered.delete(socket);
  }

  /** Ends the heartbeat of a socket (it closed). */
  remove(socket: Pingable): void {
    for (const group of this.groups) group.delete(socket);
    this.unanswered.delete(socket);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    this.current = (this.current + 1) % this.groups.length;
    for (const socket of this.groups[this.current] ?? []) {
      if (this.unanswered.has(socket)) {
        this.remove(socket);
        socket.terminate();
        continue;
      }
      this.unanswered.add(socket);
      socket.ping();
    }
  }
}
