// The benchmark's tunables, read from the environment once, validated together, frozen.
import type { PeerName } from './dialects.js';

const PEERS: readonly PeerName[] = ['ripple', 'socketio', 'ws'];

const integers = {
  /** Workload 1 (and 4, 5): sockets on one channel. */
  BENCH_PEERS_SUBSCRIBERS: 10_000,
  /** Workload 1: events in the burst to that channel. */
  BENCH_PEERS_FANOUT_EVENTS: 200,
  /** Workloads 2 and 3: channels, clients, channels per client. */
  BENCH_PEERS_CHANNELS: 1000,
  BENCH_PEERS_CLIENTS: 5000,
  BENCH_PEERS_CHANNELS_PER_CLIENT: 5,
  /** Workload 2: events in the burst, spread round-robin over the channels. */
  BENCH_PEERS_BURST_EVENTS: 2000,
  /** Workload 3: fixed publish rate (events/s) and its duration. */
  BENCH_PEERS_RATE: 200,
  BENCH_PEERS_SECONDS: 10,
  /** How long a phase waits for its last deliveries before counting the rest as missing. */
  BENCH_PEERS_DRAIN_SECONDS: 30,
  /** Sockets per client process (the open-files limit is 20,000 per process). */
  BENCH_PEERS_SOCKETS_PER_PROCESS: 15_000,
} as const;

export type BenchConfig = Readonly<
  { [K in keyof typeof integers]: number } & {
    peers: readonly PeerName[];
    /** `BENCH_PEERS_CONNECT_ONLY=1`: only workloads 4 and 5 (connect, RSS once subscribed), no bursts. */
    connectOnly: boolean;
    /**
     * `BENCH_PEERS_BURST_ONLY=1`: workloads 4, 5 and 1 only (connect, RSS once subscribed, the one-channel
     * burst and its peak RSS), no many-channels workloads and no bare kafkajs consumer.
     */
    burstOnly: boolean;
    /** `BENCH_PEERS_CPU_PROF=<dir>`: Ripple's gateway writes a V8 CPU profile there when it stops. */
    cpuProfDir: string | undefined;
    /**
     * `BENCH_PEERS_HEAP_SNAPSHOTS=<dir>`: Ripple's gateway writes a V8 heap snapshot there before the
     * sockets of workload 4 connect and once they are subscribed (its RSS figures then include them).
     */
    heapSnapshotDir: string | undefined;
  }
>;

export function loadConfig(env: Record<string, string | undefined> = process.env): BenchConfig {
  const problems: string[] = [];
  const out: Record<string, number> = {};
  for (const [name, fallback] of Object.entries(integers)) {
    const raw = env[name];
    const value = raw === undefined || raw === '' ? fallback : Number(raw);
    if (!Number.isInteger(value) || value < 1) problems.push(`${name} must be a positive integer (got '${raw ?? ''}')`);
    out[name] = value;
  }
  const peers = (env.BENCH_PEERS_ONLY ?? PEERS.join(',')).split(',').map((p) => p.trim());
  for (const p of peers) if (!PEERS.includes(p as PeerName)) problems.push(`BENCH_PEERS_ONLY: unknown peer '${p}'`);
  if ((out.BENCH_PEERS_SOCKETS_PER_PROCESS ?? 0) > 19_900)
    problems.push('BENCH_PEERS_SOCKETS_PER_PROCESS must be ≤ 19900');
  const connectOnly = env.BENCH_PEERS_CONNECT_ONLY ?? '';
  if (!['', '0', '1'].includes(connectOnly))
    problems.push(`BENCH_PEERS_CONNECT_ONLY must be 0 or 1 (got '${connectOnly}')`);
  const burstOnly = env.BENCH_PEERS_BURST_ONLY ?? '';
  if (!['', '0', '1'].includes(burstOnly)) problems.push(`BENCH_PEERS_BURST_ONLY must be 0 or 1 (got '${burstOnly}')`);
  const dir = (name: string): string | undefined => (env[name] === '' ? undefined : env[name]);
  if (problems.length > 0) throw new Error(`invalid benchmark configuration:\n  ${problems.join('\n  ')}`);
  return Object.freeze({
    ...(out as { [K in keyof typeof integers]: number }),
    peers: peers as PeerName[],
    connectOnly: connectOnly === '1',
    burstOnly: burstOnly === '1',
    cpuProfDir: dir('BENCH_PEERS_CPU_PROF'),
    heapSnapshotDir: dir('BENCH_PEERS_HEAP_SNAPSHOTS'),
  });
}
