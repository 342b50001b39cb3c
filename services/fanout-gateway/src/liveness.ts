/**
 * Whether a WebSocket peer is still there, judged once per ping interval. Anything the peer sends
 * (a pong, any frame) proves it alive. A peer is given up after `graceTicks` intervals in a row
 * with nothing from it: one late pong (a client whose process or network is briefly slow, a
 * reconnect storm on a loaded machine) does not cut a healthy connection; a dead path still ends
 * within `graceTicks` intervals, like the client SDK's own check (two heartbeats).
 */
export class Liveness {
  private silentTicks = 0;

  constructor(private readonly graceTicks = 2) {}

  /** The peer sent something (a pong or a frame). */
  seen(): void {
    this.silentTicks = 0;
  }

  /** One ping interval passed: `ping` to send the next ping, `dead` to drop the connection. */
  tick(): 'ping' | 'dead' {
    this.silentTicks++;
    return this.silentTicks > this.graceTicks ? 'dead' : 'ping';
  }
}
