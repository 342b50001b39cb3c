/** What the heartbeat needs of a socket (`ws` WebSocket). */
export interface Pingable {
  ping(): void;
  terminate(): void;
}

/** How often the heartbeat's timer runs by default (ms): each run pings one group of sockets. */
const DEFAULT_TICK_MS = 100;

/**
 * The WebSocket heartbeat of every socket of a node on one timer: each socket is pinged once per
 * `intervalMs`, and one that stayed silent for `graceTicks` intervals in a row (no `pong`, no
 * frame: anything the peer sends proves it alive) is terminated. One late pong (a client whose
 * process or network is briefly slow, a reconnect storm on a loaded machine) does not cut a
 * healthy connection; a dead path (half-open TCP) still ends within `graceTicks` + 1 intervals,
 * like the client SDK's own check (two heartbeats). The sockets are dealt round-robin over `slots`
 * groups, one group pinged per tick, so each tick pings an even share whenever the sockets came:
 * when a reconnect storm put them all in the group of the moment, that tick pinged thousands at
 * once, a synchronous write per socket that stalled the event loop (and every delivery behind it)
 * for tens of ms once per interval. One timer and two set entries per socket replace a
 * `setInterval` (and its closure) per socket, part of what each idle connection cost in memory.
 */
export class Heartbeats {
  private readonly groups: Set<Pingable>[];
  /**
   * Per socket, one number: its group, plus the group count times the intervals in a row it has
   * been silent for (a socket leaves its group in O(1), with no second entry per socket).
   */
  private readonly state = new Map<Pingable, number>();
  private readonly timer: NodeJS.Timeout;
  private current = 0;
  /** The group the next socket joins. */
  private next = 0;

  private readonly graceTicks: number;
  private readonly onTerminate: () => void;

  /**
   * `slots`: groups of sockets, one pinged per tick (default: one tick per 100 ms, 250 groups for
   * a 25 s interval); `graceTicks`: silent intervals in a row before a socket is terminated
   * (default 2); `onTerminate`: called once per socket terminated for its silence (a metric).
   */
  constructor(intervalMs: number, opts: { slots?: number; graceTicks?: number; onTerminate?: () => void } = {}) {
    const slots = opts.slots ?? Math.max(1, Math.round(intervalMs / DEFAULT_TICK_MS));
    this.graceTicks = opts.graceTicks ?? 2;
    this.onTerminate = opts.onTerminate ?? (() => undefined);
    this.groups = Array.from({ length: slots }, () => new Set<Pingable>());
    this.timer = setInterval(() => this.tick(), Math.max(1, Math.floor(intervalMs / slots)));
    this.timer.unref();
  }

  get size(): number {
    return this.state.size;
  }

  /** Starts the heartbeat of a socket; its first ping goes within one interval from now. */
  add(socket: Pingable): void {
    if (this.state.has(socket)) return;
    this.groups[this.next]?.add(socket);
    this.state.set(socket, this.next);
    this.next = (this.next + 1) % this.groups.length;
  }

  /** The socket's peer sent something (a `pong`, a frame). */
  answered(socket: Pingable): void {
    const state = this.state.get(socket);
    if (state !== undefined && state >= this.groups.length) this.state.set(socket, state % this.groups.length);
  }

  /** Ends the heartbeat of a socket (it closed). */
  remove(socket: Pingable): void {
    const state = this.state.get(socket);
    if (state === undefined) return;
    this.groups[state % this.groups.length]?.delete(socket);
    this.state.delete(socket);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private tick(): void {
    const slots = this.groups.length;
    this.current = (this.current + 1) % slots;
    for (const socket of this.groups[this.current] ?? []) {
      const silent = Math.floor((this.state.get(socket) ?? this.current) / slots) + 1;
      if (silent > this.graceTicks) {
        this.remove(socket);
        socket.terminate();
        this.onTerminate();
        continue;
      }
      this.state.set(socket, this.current + silent * slots);
      socket.ping();
    }
  }
}
