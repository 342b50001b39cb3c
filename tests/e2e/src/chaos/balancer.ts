import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The load balancer in front of the chaos cluster's gateways: a TCP proxy (tests/e2e/src/tcp-proxy.ts)
 * in a child process of its own, as a real one would be. Run inside the process that also plays
 * hundreds of clients, its accepts waited behind the clients' work on a starved machine (a
 * reconnect's TCP accept came 5–65 s after the client's connect, at load 14–26).
 */
export interface LoadBalancer {
  /** Where clients connect (127.0.0.1). */
  readonly port: number;
  readonly pid: number | undefined;
  /**
   * The gateway ports new connections are spread over (round robin); resolves once the balancer
   * uses them, so a node taken out gets no new connection after that.
   */
  setTargets(ports: readonly number[]): Promise<void>;
  /** Destroys each open connection with probability `fraction`; resolves with how many. */
  dropSome(fraction: number): Promise<number>;
  /** Stalls each open connection with probability `fraction` (bytes stop, nothing closes). */
  stallSome(fraction: number): Promise<number>;
  /**
   * When set, told each step of a new connection (`accepted`, `forwarded`) with the client's
   * port and the time (epoch ms) it happened.
   */
  trace: ((clientPort: number, step: 'accepted' | 'forwarded', at: number) => void) | undefined;
  close(): Promise<void>;
}

/** Requests to the balancer process (balancer-process.ts). */
export type BalancerRequest =
  | { op: 'targets'; id: number; ports: readonly number[] }
  | { op: 'drop' | 'stall'; id: number; fraction: number }
  | { op: 'trace'; id: number; on: boolean }
  | { op: 'close' };

/** Messages from the balancer process. */
export type BalancerReply =
  | { op: 'ready'; port: number }
  | { op: 'done'; id: number; count: number }
  | { op: 'trace'; port: number; step: 'accepted' | 'forwarded'; at: number };

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/** Starts the balancer process; resolves once it listens. */
export async function startLoadBalancer(): Promise<LoadBalancer> {
  const child = fork(fileURLToPath(new URL('./balancer-process.js', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const killChild = (): void => void child.kill('SIGKILL');
  process.once('exit', killChild);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pending = new Map<number, (count: number) => void>();
  let nextId = 0;
  let trace: LoadBalancer['trace'];
  const port = await new Promise<number>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`the load balancer exited with ${code} before listening`)));
    child.on('message', (message: BalancerReply) => {
      if (message.op === 'ready') resolve(message.port);
      else if (message.op === 'done') {
        pending.get(message.id)?.(message.count);
        pending.delete(message.id);
      } else trace?.(message.port, message.step, message.at);
    });
  });
  const ask = (request: WithoutId<Extract<BalancerRequest, { id: number }>>): Promise<number> =>
    new Promise((resolve, reject) => {
      if (!child.connected) return reject(new Error('the load balancer is gone'));
      const id = ++nextId;
      pending.set(id, resolve);
      child.send({ ...request, id });
    });
  return {
    port,
    pid: child.pid,
    setTargets: async (ports) => {
      await ask({ op: 'targets', ports });
    },
    dropSome: (fraction) => ask({ op: 'drop', fraction }),
    stallSome: (fraction) => ask({ op: 'stall', fraction }),
    get trace() {
      return trace;
    },
    set trace(fn) {
      trace = fn;
      void ask({ op: 'trace', on: fn !== undefined }).catch(() => undefined);
    },
    close: async () => {
      process.off('exit', killChild);
      if (child.connected) child.send({ op: 'close' } satisfies BalancerRequest);
      else child.kill('SIGKILL');
      await exited;
    },
  };
}
