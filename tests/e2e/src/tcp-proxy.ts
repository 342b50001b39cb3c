import { createConnection, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A TCP proxy for tests: forwards each new connection to the port `target` names at that moment
 * (a load balancer in front of gateway nodes), and can cut every open connection at once
 * (a network failure mid-stream: no close handshake, both ends destroyed).
 */
export interface TcpProxy {
  readonly port: number;
  /** Where new connections go (existing ones stay where they are). */
  target: number;
  /** When set, picks the port of each new connection instead of `target` (a load balancer's pick). */
  route: (() => number) | undefined;
  /**
   * When set, told each step of a connection: `accepted` (the client's connection arrived) and
   * `forwarded` (the connection to the target is up), with the client's port (its local port).
   */
  trace: ((clientPort: number, step: 'accepted' | 'forwarded') => void) | undefined;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Holds new connections (accepted, not forwarded) until the returned function is called. */
  hold(): () => void;
  /** Destroys every open connection, both sides. */
  dropAll(): void;
  /** Destroys each forwarded connection with probability `fraction` (0..1); returns how many. */
  dropSome(fraction: number): number;
  /**
   * Stalls each forwarded connection with probability `fraction`: bytes stop flowing both ways
   * and nothing is closed (a dead network path); the peers must notice by themselves. Returns how many.
   */
  stallSome(fraction: number): number;
  close(): Promise<void>;
}

/** Starts a proxy on 127.0.0.1 (a free port) forwarding to `target`. */
export async function startTcpProxy(target: number): Promise<TcpProxy> {
  const open = new Set<Socket>();
  const pairs = new Set<readonly [Socket, Socket]>();
  let accepted = 0;
  const track = (socket: Socket): void => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => socket.destroy());
  };
  let held: (() => void)[] | undefined;
  const server = createServer((client) => {
    accepted++;
    track(client);
    proxy.trace?.(client.remotePort ?? 0, 'accepted');
    if (held) held.push(() => forward(client));
    else forward(client);
  });
  const forward = (client: Socket): void => {
    if (client.destroyed) return;
    const upstream = createConnection({ host: '127.0.0.1', port: proxy.route?.() ?? proxy.target });
    track(upstream);
    if (proxy.trace) upstream.once('connect', () => proxy.trace?.(client.remotePort ?? 0, 'forwarded'));
    const pair = [client, upstream] as const;
    pairs.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => {
      pairs.delete(pair);
      upstream.destroy();
    });
    upstream.on('close', () => client.destroy());
  };
  // A load balancer's backlog: a reconnect storm must not wait for TCP retransmits here (511, Node's
  // default, dropped the SYNs of a 5,000-client rolling restart for seconds).
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve));
  const proxy: TcpProxy = {
    port: (server.address() as AddressInfo).port,
    target,
    route: undefined,
    trace: undefined,
    get accepted() {
      return accepted;
    },
    hold: () => {
      held ??= [];
      return () => {
        const waiting = held ?? [];
        held = undefined;
        for (const go of waiting) go();
      };
    },
    dropAll: () => {
      for (const socket of open) socket.destroy();
    },
    dropSome: (fraction) => {
      const picked = [...pairs].filter(() => Math.random() < fraction);
      for (const [client, upstream] of picked) {
        client.destroy();
        upstream.destroy();
      }
      return picked.length;
    },
    stallSome: (fraction) => {
      const picked = [...pairs].filter(() => Math.random() < fraction);
      for (const pair of picked) {
        pairs.delete(pair);
        const [client, upstream] = pair;
        client.unpipe(upstream);
        upstream.unpipe(client);
        client.pause();
        upstream.pause();
      }
      return picked.length;
    },
    close: () =>
      new Promise<void>((resolve) => {
        proxy.dropAll();
        server.close(() => resolve());
      }),
  };
  return proxy;
}
