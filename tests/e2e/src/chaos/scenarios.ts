import { loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { runId, waitUntil } from '@ripple/testing';
import { waitReady } from './cluster.js';
import type { Cluster } from './cluster.js';
import { CpuSampler, cpuUse } from './cpu.js';
import { connectFleet } from './fleet.js';
import type { Fleet } from './fleet.js';
import { explainMisses } from './diagnosis.js';
import { gatewaySummary, scrapeGateways } from './gateway-metrics.js';
import type { EventWhereabouts, MissReport } from './diagnosis.js';
import { Ledger, withMisses } from './ledger.js';
import type { ScenarioResult } from './ledger.js';
import { Timelines } from './timeline.js';

/** How big a scenario is. */
export interface ChaosSize {
  /** Clients connected during the scenario (the rolling restart's issue figure is 5,000). */
  readonly clients: number;
  /** Creators posting; each client follows one of them. */
  readonly creators: number;
  /** POST /posts per second, all creators together. */
  readonly postsPerSec: number;
  /** Traffic before the fault and after it, ms each. */
  readonly trafficMs: number;
  /** Clients per fleet process (default {@link CLIENTS_PER_PROCESS}): the fleet runs in ⌈clients / this⌉ processes. */
  readonly clientsPerProcess?: number;
}

/** Clients per fleet process unless a size says otherwise. */
export const CLIENTS_PER_PROCESS = 1000;

/** A fault, done while traffic flows. */
export interface Scenario {
  readonly name: string;
  readonly fault: (cluster: Cluster, fleet: Fleet) => Promise<void>;
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The scenarios, in the order they run. */
export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'sigkill-gateway',
    fault: (cluster) => cluster.killGateway(0, 1000),
  },
  {
    name: 'rolling-restart',
    fault: async (cluster) => {
      for (let slot = 0; slot < cluster.gateways.length; slot++) await cluster.restartGateway(slot);
    },
  },
  {
    name: 'network-drops',
    fault: async (cluster) => {
      for (let round = 0; round < 5; round++) {
        await cluster.proxy.dropSome(0.1);
        await cluster.proxy.stallSome(0.05);
        await pause(1000);
      }
    },
  },
  {
    name: 'slow-consumer',
    fault: (_cluster, fleet) => fleet.pauseReading(Math.max(1, Math.ceil(fleet.size / 20)), 4000),
  },
  {
    name: 'redis-restart',
    fault: async (cluster) => {
      await cluster.redis.restart();
      await waitReady(cluster);
    },
  },
  {
    // A fast shutdown of the private PostgreSQL (sessions end), down 2 s, started again.
    name: 'postgres-restart',
    fault: (cluster) => cluster.postgres.restart(2000),
  },
  {
    name: 'kafka-restart',
    fault: async (cluster) => {
      await cluster.kafka.stop();
      await pause(2000);
      await cluster.kafka.start();
      await waitReady(cluster);
    },
  },
];

/**
 * Runs one scenario on a running cluster: connects a fresh fleet, posts at `size.postsPerSec`
 * (every 2xx noted in the ledger), does the fault, posts on for `size.trafficMs`, then waits up
 * to `settleMs` for every delivery (or refetch) before it reads the figures. Deliveries missing
 * then are explained (see {@link explainLate}): where their events were, and whether they arrive
 * within `extraMs` more. `log` gets where the recoveries' time went (see {@link Timelines.summary}).
 */
export async function runScenario(
  cluster: Cluster,
  scenario: Scenario,
  size: ChaosSize,
  settleMs = 60_000,
  log?: (text: string) => void,
  extraMs = settleMs,
): Promise<ScenarioResult> {
  const ledger = new Ledger();
  const timelines = new Timelines();
  const tag = `${scenario.name}-${runId()}`;
  const creators = Array.from({ length: size.creators }, (_, i) => `${tag}-a${i}`);
  const loop = monitorEventLoopDelay({ resolution: 10 });
  loop.enable();
  const processes = Math.ceil(size.clients / (size.clientsPerProcess ?? CLIENTS_PER_PROCESS));
  const fleet = await connectFleet(cluster, ledger, tag, creators, size.clients, timelines, processes, log);
  // Every process of the run, the fleet's included, for the CPU figures.
  const pids = () => ({ ...cluster.pids(), ...fleet.pids() });
  try {
    const traffic = startTraffic(cluster, ledger, creators, size.postsPerSec);
    const steady = cpuUse(pids);
    await pause(size.trafficMs);
    const { ms, wallMs } = steady.done();
    const perSec = Object.entries(ms).map(([name, used]) => `${name} ${Math.round((used * 1000) / wallMs)}`);
    log?.(
      `${scenario.name}: before the fault, ${size.clients} clients and traffic: CPU ms per s ${perSec.join(', ')} (load average ${loadavg()[0]?.toFixed(1)})\n`,
    );
    cluster.sampleMemory(ledger);
    fleet.sampleMemory(ledger);
    const gateways = () => cluster.gateways.map((g) => ({ url: g.url, pid: g.process.pid }));
    const gatewaysBefore = await scrapeGateways(gateways());
    const cpu = new CpuSampler(pids);
    const faultAt = Date.now();
    await scenario.fault(cluster, fleet);
    const faultMs = Date.now() - faultAt;
    await pause(size.trafficMs);
    cpu.stop();
    await traffic.stop();
    // The gateways' side of the recoveries: set-up by phase, connect-path Redis calls, loop delay.
    const gatewaysAfter = await scrapeGateways(gateways());
    const trafficEnded = Date.now();
    await waitUntil('every delivery', settleMs, () => ledger.complete()).catch(() => undefined);
    const result = ledger.result(scenario.name);
    // How much of the wait the deliveries took: how close a passing run came to missing.
    const settled = ledger.complete()
      ? `every delivery made ${Date.now() - trafficEnded} ms after the traffic`
      : 'deliveries missing';
    const misses =
      result.delivered < result.expected ? await explainLate(cluster, ledger, settleMs, extraMs) : undefined;
    if (misses) log?.(`${scenario.name}: missing deliveries explained:\n${JSON.stringify(misses, null, 1)}\n`);
    cluster.sampleMemory(ledger);
    fleet.sampleMemory(ledger);
    loop.disable();
    const fleetLoops = (await fleet.loopDelays()).map((d) => `${Math.round(d.p99Ms)}/${Math.round(d.maxMs)}`);
    const lag = `driver event loop delay p99 ${Math.round(loop.percentile(99) / 1e6)} ms, max ${Math.round(loop.max / 1e6)} ms; fleet processes' p99/max ms ${fleetLoops.join(', ')}`;
    log?.(
      `${scenario.name}: fault at ${new Date(faultAt).toISOString()} (took ${faultMs} ms); ${settled}; ${lag}; recoveries:\n${timelines.summary()}\n`,
    );
    log?.(`${scenario.name}: closes by code and side: ${JSON.stringify(fleet.closes())}\n`);
    log?.(
      `${scenario.name}: the gateways, from just before the fault to the end of the traffic:\n${gatewaySummary(gatewaysBefore, gatewaysAfter)}\n`,
    );
    log?.(`${scenario.name}: main threads, per second from the fault on:\n${cpu.report()}\n`);
    // The figures are those of the end of the wait (late deliveries do not count); memory is the run's peak.
    const { peakRssMb } = ledger.result(scenario.name);
    return misses ? withMisses({ ...result, peakRssMb }, misses) : { ...result, peakRssMb };
  } finally {
    await fleet.close();
  }
}

/**
 * For the deliveries missing after the wait of `afterMs`: where their events were (outbox,
 * Kafka, channel history), then waits up to `extraMs` more to see which arrive late, and reads
 * again where the events of those still missing are.
 */
async function explainLate(cluster: Cluster, ledger: Ledger, afterMs: number, extraMs: number): Promise<MissReport> {
  const waitEnded = Date.now();
  const misses = ledger.misses();
  const locate = (of: typeof misses): Promise<Map<string, EventWhereabouts>> =>
    of.length === 0
      ? Promise.resolve(new Map<string, EventWhereabouts>())
      : cluster.whereabouts.locate(of).catch((err: unknown) => {
          process.stderr.write(`chaos: could not read where events are: ${String(err)}\n`);
          return new Map<string, EventWhereabouts>();
        });
  const before = await locate(misses);
  const arrivedAfterMs = new Map<string, number>();
  let pending = misses;
  await waitUntil('the missing deliveries', Math.max(0, waitEnded + extraMs - Date.now()), () => {
    pending = pending.filter((m) => {
      if (!ledger.delivered(m.client, m.id)) return true;
      arrivedAfterMs.set(`${m.client}\n${m.id}`, Date.now() - waitEnded);
      return false;
    });
    return pending.length === 0;
  }).catch(() => undefined);
  const after = await locate(pending);
  return explainMisses({ afterMs, extraMs, misses, before, arrivedAfterMs, after });
}

/**
 * Posts as `creators` in turn at `perSec` (at most 16 requests in flight); each 201 is an
 * accepted event of `creator:<author>`. `stop` ends it and waits for the requests in flight.
 */
function startTraffic(
  cluster: Cluster,
  ledger: Ledger,
  creators: readonly string[],
  perSec: number,
): { stop: () => Promise<void> } {
  const inFlight = new Set<Promise<void>>();
  let n = 0;
  const post = async (creator: string): Promise<void> => {
    try {
      const res = await fetch(`${cluster.postService.url}/posts`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await cluster.token(creator)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ body: `chaos ${n}` }),
      });
      if (res.status === 201) ledger.accept(`creator:${creator}`, ((await res.json()) as { id: string }).id);
      else {
        ledger.refused(res.status); // not accepted, so nobody is owed it
        await res.body?.cancel();
      }
    } catch {
      ledger.refused('unreachable');
    }
  };
  const timer = setInterval(() => {
    if (inFlight.size >= 16) return;
    const creator = creators[n++ % creators.length] ?? '';
    const done = post(creator).finally(() => inFlight.delete(done));
    inFlight.add(done);
  }, 1000 / perSec);
  return {
    stop: async () => {
      clearInterval(timer);
      await Promise.all(inFlight);
    },
  };
}
