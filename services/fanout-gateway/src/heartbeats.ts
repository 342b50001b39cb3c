/** What the heartbeat needs of a socket (`ws` WebSocket). */
export interface Pingable {
  ping(): void;
  terminate(): void;
}

/**
 * The WebSocket heartbeat of every socket of a node on one timer: each socket is pinged once per
 * `intervalMs`, and one that stayed silent for `graceTicks` intervals in a row (no `pong`, no
 * frame: anything the peer sends proves it alive) is terminated. One late pong (a client whose
 * process or network is briefly slow, a reconnect storm on a loaded machine) does not cut a
 * healthy connection; a dead path (half-open TCP) still ends within `graceTicks` + 1 intervals,
 * like the client SDK's own check (two heartbeats). The
 * sockets are spread over `slots` groups, one group per tick, so a node with many sockets does
 * not ping them all at once. One timer and two set entries per socket replace a `setInterval`
 * (and its closure) per socket, part of what each idle connection cost in memory.
 */
export class Heartbeats {
  private readonly groups: Set<Pingable>[];
  /** Intervals in a row each socket has been silent for. */
  private readonly silent = new Map<Pingable, number>();
  private readonly timer: NodeJS.Timeout;
  private current = 0;

  private readonly graceTicks: number;
  private readonly onTerminate: () => void;

  /**
   * `slots`: groups of sockets, one pinged per tick (default 10); `graceTicks`: silent intervals
   * in a row before a socket is terminated (default 2); `onTerminate`: called once per socket
   * terminated for its silence (a metric).
   */
  constructor(intervalMs: number, opts: { slots?: number; graceTicks?: number; onTerminate?: () => void } = {}) {
    const slots = opts.slots ?? 10;
    this.graceTicks = opts.graceTicks ?? 2;
    this.onTerminate = opts.onTerminate ?? (() => undefined);
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

  /** The socket's peer sent something (a `pong`, a frame). */
  answered(socket: Pingable): void {
    if (this.silent.has(socket)) this.silent.set(socket, 0);
  }

  /** Ends the heartbeat of a socket (it closed). */
  remove(socket: Pingable): void {
    for (const group of this.groups) group.delete(socket);
    this.silent.delete(socket);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    this.current = (this.current + 1) % this.groups.length;
    for (const socket of this.groups[this.current] ?? []) {
      const silent = (this.silent.get(socket) ?? 0) + 1;
      if (silent > this.graceTicks) {
        this.remove(socket);
        socket.terminate();
        this.onTerminate();
        continue;
      }
      this.silent.set(socket, silent);
      socket.ping();
    }
  }
}
