import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { peakRssOf } from './cluster.js';
import type { Cluster } from './cluster.js';
import { cpuUse } from './cpu.js';
import type { Ledger } from './ledger.js';
import type { Mark, Timelines } from './timeline.js';

/**
 * Clients of a scenario, each following one creator channel, every event noted in the ledger.
 * The clients live in fleet processes (fleet-process.ts), a share each; the ledger and the
 * timelines live here, in the driver, fed by the processes' notes.
 */
export interface Fleet {
  /** Clients in the fleet. */
  readonly size: number;
  /** Sockets closed so far (not by `close()`), by `<close code> <which side closed>`. */
  closes(): Record<string, number>;
  /** Stops reading (pauses) the current sockets of clients 0 … `count` − 1 for `ms`: slow consumers. */
  pauseReading(count: number, ms: number): Promise<void>;
  /** The fleet processes' ids, by name (`fleet0`…), for CPU figures. */
  pids(): Record<string, number | undefined>;
  /** Records the fleet processes' peak memory in `ledger` (as `fleet`, the largest one). */
  sampleMemory(ledger: Ledger): void;
  /** Each fleet process's event-loop delay since it started, p99 and max, ms. */
  loopDelays(): Promise<{ p99Ms: number; maxMs: number }[]>;
  /** Closes every client and ends the fleet processes; resolves once they exited. */
  close(): Promise<void>;
}

/** What a fleet process tells the driver, in batches. `i`: the client's index in the fleet. */
export type FleetNote =
  | { k: 'subscribed' }
  | { k: 'node'; i: number; node: string }
  /**
   * Event `id` received by clients `i` (one entry per receipt: a client twice is a duplicate).
   * One note per event and batch, not per delivery: at 20,000 deliveries/s, a note (an object
   * serialised to JSON on IPC) per delivery cost the driver and the fleet processes ~0.2 of a core
   * that the platform under test then lacked.
   */
  | { k: 'receive'; id: string; i: number[] }
  | { k: 'gap'; i: number }
  | { k: 'refetch'; i: number; ids: string[] }
  | { k: 'recovered'; ms: number }
  | { k: 'closed'; code: number; by: string }
  | { k: 'mark'; i: number; mark: Mark; at: number; detail?: number }
  | { k: 'port'; i: number; port: number };

/** The share of a fleet process and where it connects. */
export interface FleetStart {
  readonly op: 'start';
  /** The load balancer's port (127.0.0.1). */
  readonly proxyPort: number;
  /** post-service, for the refetch after a gap. */
  readonly postServiceUrl: string;
  /** Client `index` follows `creator:<creators[index % creators.length]>`. */
  readonly creators: readonly string[];
  /** The share's clients: their index in the fleet and their access token. */
  readonly clients: readonly { readonly index: number; readonly token: string }[];
  /** Clients of this share being set up at the same time. */
  readonly connecting: number;
}

/** Requests to a fleet process. */
export type FleetRequest =
  FleetStart | { op: 'pause'; id: number; count: number; ms: number } | { op: 'loop'; id: number } | { op: 'close' };

/** Messages from a fleet process. */
export type FleetReply =
  | { op: 'ready' }
  | { op: 'notes'; notes: FleetNote[] }
  | { op: 'connected' }
  | { op: 'failed'; message: string }
  | { op: 'done'; id: number; loop?: { p99Ms: number; maxMs: number } };

/** Clients of a fleet being set up (connect, welcome, subscribe, ack) at the same time, all processes together. */
const CONNECTING = 100;

/**
 * Applies fleet processes' notes to the driver's `ledger` and `timelines`. Client `i` is
 * `idOf(i)` in both. The balancer's steps (by the client's local port) are matched through the
 * processes' `port` notes, whichever comes first.
 */
export class FleetNotes {
  subscribed = 0;
  private readonly closeCounts = new Map<string, number>(); // `<code> <who closed>` -> sockets
  private readonly byPort = new Map<number, string>();
  private readonly early = new Map<number, ['accepted' | 'forwarded', number][]>(); // steps before the port was known

  constructor(
    private readonly ledger: Ledger,
    private readonly timelines: Timelines,
    private readonly idOf: (index: number) => string,
  ) {}

  /** Applies one batch, in order. */
  apply(notes: readonly FleetNote[]): void {
    for (const n of notes) {
      switch (n.k) {
        case 'subscribed':
          this.subscribed++;
          break;
        case 'node':
          this.ledger.node(this.idOf(n.i), n.node);
          break;
        case 'receive':
          for (const i of n.i) this.ledger.receive(this.idOf(i), n.id);
          break;
        case 'gap':
          this.ledger.gap(this.idOf(n.i));
          break;
        case 'refetch':
          this.ledger.refetch(this.idOf(n.i), n.ids);
          break;
        case 'recovered':
          this.ledger.recovered(n.ms);
          break;
        case 'closed': {
          this.ledger.closed(n.code);
          const key = `${n.code} ${n.by}`;
          this.closeCounts.set(key, (this.closeCounts.get(key) ?? 0) + 1);
          break;
        }
        case 'mark':
          this.timelines.mark(this.idOf(n.i), n.mark, n.detail, n.at);
          break;
        case 'port': {
          const id = this.idOf(n.i);
          this.byPort.set(n.port, id);
          for (const [step, at] of this.early.get(n.port) ?? []) this.timelines.mark(id, step, undefined, at);
          this.early.delete(n.port);
          break;
        }
      }
    }
  }

  /** The balancer's step `step` of the connection from local port `port`, at `at` (epoch ms). */
  proxyStep(port: number, step: 'accepted' | 'forwarded', at: number): void {
    const id = this.byPort.get(port);
    if (id !== undefined) this.timelines.mark(id, step, undefined, at);
    else this.early.set(port, [...(this.early.get(port) ?? []), [step, at]]);
  }

  closes(): Record<string, number> {
    return Object.fromEntries(this.closeCounts);
  }
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

/** One fleet process, driven over IPC. */
class FleetProcess {
  private readonly pending = new Map<number, (reply: Extract<FleetReply, { op: 'done' }>) => void>();
  private nextId = 0;
  readonly exited: Promise<void>;
  /** Settles when the share is subscribed (or failed, or the process died first). */
  readonly connected: Promise<void>;

  constructor(
    readonly child: ChildProcess,
    notes: FleetNotes,
  ) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    this.connected = new Promise((resolve, reject) => {
      child.once('exit', (code, signal) =>
        reject(new Error(`a fleet process exited (${code ?? signal}) before its clients were subscribed`)),
      );
      child.on('message', (message: FleetReply) => {
        switch (message.op) {
          case 'notes':
            notes.apply(message.notes);
            return;
          case 'connected':
            resolve();
            return;
          case 'failed':
            reject(new Error(`a fleet process failed: ${message.message}`));
            return;
          case 'done':
            this.pending.get(message.id)?.(message);
            this.pending.delete(message.id);
            return;
          case 'ready':
            return;
        }
      });
    });
    this.connected.catch(() => undefined); // awaited by connectFleet; not unhandled meanwhile
  }

  send(request: FleetRequest): void {
    if (this.child.connected) this.child.send(request);
  }

  ask(request: WithoutId<Extract<FleetRequest, { id: number }>>): Promise<Extract<FleetReply, { op: 'done' }>> {
    return new Promise((resolve, reject) => {
      if (!this.child.connected) return reject(new Error('the fleet process is gone'));
      const id = ++this.nextId;
      this.pending.set(id, resolve);
      this.child.send({ ...request, id });
    });
  }
}

/** Forks a fleet process; resolves once it said it is ready. */
async function forkFleetProcess(notes: FleetNotes): Promise<FleetProcess> {
  const child = fork(fileURLToPath(new URL('./fleet-process.js', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`a fleet process exited with ${code} before it was ready`)));
    child.once('message', () => resolve()); // its first message is `ready`
  });
  return new FleetProcess(child, notes);
}

/**
 * Connects `count` @ripple/client clients through the cluster's proxy (client `i`, `<tag>-c<i>`,
 * follows `creator:<creators[i % creators.length]>`), spread over `processes` fleet processes
 * (client `i` in process `i % processes`), at most {@link CONNECTING} being set up at a time, and
 * resolves once every subscription is acknowledged. Each event, gap (followed at once by the REST
 * refetch, retried until it answers) and reconnection time goes to `ledger`; each connection step
 * to `timelines`. Rejects when a fleet process fails or dies during set-up (the others are ended).
 */
export async function connectFleet(
  cluster: Cluster,
  ledger: Ledger,
  tag: string,
  creators: readonly string[],
  count: number,
  timelines: Timelines,
  processes: number,
  log?: (text: string) => void,
): Promise<Fleet> {
  const idOf = (i: number) => `${tag}-c${i}`;
  const notes = new FleetNotes(ledger, timelines, idOf);
  cluster.proxy.trace = (port, step, at) => notes.proxyStep(port, step, at);
  const shares = Array.from({ length: Math.max(1, Math.min(processes, count)) }, () => [] as number[]);
  for (let i = 0; i < count; i++) {
    ledger.follow(idOf(i), `creator:${creators[i % creators.length] ?? ''}`);
    shares[i % shares.length]?.push(i);
  }
  const started = await Promise.allSettled(shares.map(() => forkFleetProcess(notes)));
  const fleet = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const pids = () => Object.fromEntries(fleet.map((p, n) => [`fleet${n}`, p.child.pid]));
  let peak = 0;
  const close = async (): Promise<void> => {
    for (const p of fleet) p.send({ op: 'close' });
    const gone = Promise.all(fleet.map((p) => p.exited));
    const timer = setTimeout(() => fleet.forEach((p) => p.child.kill('SIGKILL')), 10_000);
    await gone;
    clearTimeout(timer);
  };
  // Whatever way the driver ends, no fleet process outlives it (they also exit on disconnect).
  const killAll = () => fleet.forEach((p) => p.child.kill('SIGKILL'));
  process.once('exit', killAll);
  const failure = started.find((s) => s.status === 'rejected');
  if (failure) {
    await close();
    throw failure.reason;
  }
  const begun = Date.now();
  const cpu = cpuUse(() => ({ ...cluster.pids(), ...pids() }));
  let last = { at: begun, subscribed: 0 };
  const progress = setInterval(() => {
    const now = Date.now();
    const rate = ((notes.subscribed - last.subscribed) * 1000) / (now - last.at);
    last = { at: now, subscribed: notes.subscribed };
    log?.(
      `fleet ${tag}: ${notes.subscribed}/${count} subscribed after ${now - begun} ms (${rate.toFixed(1)}/s in the last interval; load average ${loadavg()[0]?.toFixed(1)}); closes so far ${JSON.stringify(notes.closes())}\n`,
    );
  }, 5000);
  try {
    const tokens = await Promise.all(Array.from({ length: count }, (_, i) => cluster.token(`r${idOf(i)}`)));
    fleet.forEach((p, n) =>
      p.send({
        op: 'start',
        proxyPort: cluster.proxy.port,
        postServiceUrl: cluster.postService.url,
        creators,
        clients: (shares[n] ?? []).map((index) => ({ index, token: tokens[index] ?? '' })),
        connecting: Math.max(1, Math.ceil(CONNECTING / fleet.length)),
      }),
    );
    await Promise.all(fleet.map((p) => p.connected));
  } catch (err) {
    await close();
    throw err;
  } finally {
    clearInterval(progress);
  }
  const { ms, wallMs } = cpu.done();
  const perClient = Object.entries(ms).map(([name, used]) => `${name} ${(used / count).toFixed(2)}`);
  log?.(
    `fleet ${tag}: ${count} clients in ${fleet.length} processes subscribed in ${wallMs} ms (${((count * 1000) / wallMs).toFixed(1)}/s, load average ${loadavg()[0]?.toFixed(1)}); CPU ms per client set-up: ${perClient.join(', ')}\n`,
  );
  return {
    size: count,
    closes: () => notes.closes(),
    pauseReading: async (n, ms) => {
      // Clients 0 … n − 1 are the first ones of each share.
      await Promise.all(
        fleet.map((p, k) =>
          p.ask({ op: 'pause', count: (shares[k] ?? []).filter((i) => i < n).length, ms }).then(() => undefined),
        ),
      );
    },
    pids,
    sampleMemory: (into) => {
      for (const p of fleet) peak = Math.max(peak, peakRssOf(p.child.pid) ?? 0);
      if (peak > 0) into.rss('fleet', peak);
    },
    loopDelays: () =>
      Promise.all(fleet.map((p) => p.ask({ op: 'loop' }).then((r) => r.loop ?? { p99Ms: NaN, maxMs: NaN }))),
    close: async () => {
      cluster.proxy.trace = undefined;
      await close();
      process.off('exit', killAll);
    },
  };
}
