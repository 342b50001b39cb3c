import { jwtSecret, verifyAccessToken } from '@ripple/auth';
import { LeasedDirectory, MemoryHistory, MemoryLeasedSets, SequentialConnectLog } from '@ripple/registry';
import type { Directory, StreamPosition } from '@ripple/registry';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import type { Logger } from '@ripple/telemetry';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { Connections } from './connections.js';
import { LocalHub } from './hub.js';
import type { NodeBus } from './bus.js';
import type { LifecycleDeps } from './lifecycle.js';
import { createGatewayMetrics } from './metrics.js';
import { eventFrame } from './protocol.js';
import type { SendBudget } from './send-budget.js';
import type { SessionLimits } from './session.js';
import type { DerivedChannels } from './subscriptions.js';

/** The access-token secret of `singleNodeGateway`'s deps. */
export const unitSecret = jwtSecret('unit-test-secret-long-enough');

/** The gateway's metrics on `registry` (a fresh one by default), with no subscriptions or connections to gauge. */
export const unitMetrics = (registry = createMetricsRegistry('t')) =>
  createGatewayMetrics(
    registry,
    () => 0,
    () => 0,
  );

/** A node bus that sends nowhere (single node only). */
export const unitBus: NodeBus = {
  start: () => Promise.resolve(),
  stop: () => Promise.resolve(),
  send: () => Promise.resolve(),
  broadcast: () => Promise.resolve(),
};

export const unitLimits: SessionLimits = {
  maxSubscriptions: 5,
  sendBufferBytes: 1_000_000,
  ratePerSecond: 1000,
  rateBurst: 1000,
  abuseLimit: 3,
  refreshWindowMs: 30_000,
};

/**
 * The connection lifecycle's dependencies for one gateway node (`n1`) on in-memory adapters
 * (single node only; unit tests). The registry's leases run on a clock frozen at creation
 * (`clock.now`, ms), so nothing a test leaves behind disappears by expiring; `now` is the sessions'
 * clock (the same frozen one by default); `setupDelayMs` delays each connection's registration; `derived`: channels composed by the node
 * (the live feed's `feed:`). `wrap` replaces the directory the connections use (e.g. a slow one); `directory` is the
 * one below it, to read what the registry holds.
 */
export function singleNodeGateway(
  options: {
    now?: () => number;
    limits?: Partial<SessionLimits>;
    wrap?: (d: Directory) => Directory;
    setupDelayMs?: number;
    derived?: DerivedChannels;
  } = {},
) {
  const clock = { now: Date.now() };
  const history = new MemoryHistory(100);
  const hub = new LocalHub({ history, fillLimit: 100 });
  const directory = new LeasedDirectory(new MemoryLeasedSets(() => clock.now), 't:', 'n1', 15_000);
  const used = options.wrap ? options.wrap(directory) : directory;
  const registry = createMetricsRegistry('gateway-unit');
  const metrics = createGatewayMetrics(
    registry,
    () => hub.subscriptionCount,
    () => 0,
  );
  const logger: Logger = createLogger('gateway-unit', 'silent');
  const connections = new Connections('n1', new SequentialConnectLog(used, history), metrics, logger, () =>
    Promise.resolve(),
  );
  const deps = {
    nodeId: 'n1',
    hub,
    history,
    directory: used,
    historyLimit: 100,
    jwtSecret: unitSecret,
    verifyAccess: (token: string) => verifyAccessToken(unitSecret, token),
    connections,
    metrics,
    limits: { ...unitLimits, ...options.limits },
    heartbeatMs: 25_000,
    isDraining: () => false,
    now: options.now ?? (() => clock.now),
    setupDelayMs: options.setupDelayMs ?? 0,
    derived: options.derived,
  } satisfies LifecycleDeps;
  /** True when nothing is held for any connection: no subscription, registry entry or connection. */
  const holdsNothing = async (channels: readonly string[]) =>
    hub.subscriptionCount === 0 &&
    connections.size === 0 &&
    (await Promise.all(channels.map((c) => directory.nodesFor(c)))).every((nodes) => nodes.length === 0);
  return { deps, clock, hub, history, directory, connections, registry, metrics, logger, holdsNothing };
}

/**
 * The gateway's HTTP app over `g` (`singleNodeGateway`), listening on a free port of 127.0.0.1 and
 * closed after the test `t`. WebSocket pages may come from http://app.test. `sendBudget`: the
 * gateway-wide send budget its sockets and streams report to (none: unbounded).
 */
export async function singleNodeApp(
  t: { after(fn: () => Promise<unknown>): void },
  g: ReturnType<typeof singleNodeGateway>,
  limits: Partial<SessionLimits & { maxPayloadBytes: number }> = {},
  sendBudget?: SendBudget,
): Promise<FastifyInstance> {
  const app = await buildApp({
    ...g.deps,
    logger: g.logger,
    registry: g.registry,
    checks: {},
    limits: { ...unitLimits, ratePerSecond: 100, rateBurst: 100, maxPayloadBytes: 4096, ...limits },
    pingIntervalMs: 25_000,
    corsOrigins: '*',
    webSocketOrigins: ['http://app.test'],
    ...(sendBudget && { sendBudget }),
  });
  t.after(() => app.close());
  return app;
}

/**
 * Appends `count` events of ~`pad` bytes (JSON `{ i, pad }`) to `channel`'s history of `g`
 * (`singleNodeGateway`); resolves with the position before them (a `since` or `Last-Event-ID`
 * that replays them all).
 */
export async function appendHistory(
  g: ReturnType<typeof singleNodeGateway>,
  channel: string,
  count: number,
  pad: number,
): Promise<StreamPosition> {
  const before = await g.history.position(channel);
  for (let i = 0; i < count; i++) await g.history.append(channel, JSON.stringify({ i, pad: 'x'.repeat(pad) }));
  return before;
}

/**
 * Hands `channel`'s next `count` events of ~3 KB (offsets after `from`, in `epoch`) to the hub of
 * `g`, as a router does.
 */
export function publishLive(
  g: ReturnType<typeof singleNodeGateway>,
  channel: string,
  epoch: string,
  from: number,
  count: number,
): void {
  for (let offset = from + 1; offset <= from + count; offset++) {
    const payload = JSON.stringify({ live: offset, pad: 'y'.repeat(3000) });
    g.hub.publish({
      channel,
      offset: String(offset),
      epoch,
      frame: eventFrame(channel, String(offset), epoch, payload),
    });
  }
}

/**
 * Records, at each read of `g`'s history for a resume (`since`: a subscribe's replay or a gap
 * fill), what `measure` returns then (e.g. a send budget's `queuedBytes`); for tests that bound
 * what a connection holds when its next replay is fetched. The array fills as reads happen.
 */
export function atEachHistoryRead(g: ReturnType<typeof singleNodeGateway>, measure: () => number): number[] {
  const measured: number[] = [];
  const since = g.history.since.bind(g.history);
  g.history.since = (...args: Parameters<typeof since>) => {
    measured.push(measure());
    return since(...args);
  };
  return measured;
}
