// Soak: the fanout and chat scenarios together, plus unread-count reads, at a steady rate for as
// long as asked (DURATION; not run in CI). It catches leaks: after the run the
// gateway's connection and subscription gauges must come back to where they were before it
// (`ripple_soak_leaked_*` = 0), and its heap must not have grown by more than HEAP_GROWTH_MAX_MB.
//
// Knobs (environment): every knob of fanout.ts and chat.ts (DURATION, required here, applies to both), and
//   READ_RATE            unread-count requests per second     (default 5)
//   HEAP_GROWTH_MAX_MB   allowed heap growth of the gateway   (default 64)
//   RECOVERY_TIMEOUT     wait for the gauges to come back     (default 60s)
// Example: DURATION=1h VUS=2000 RATE=100 pnpm load soak
import exec from 'k6/execution';
import http from 'k6/http';
import { sleep } from 'k6';
import { Gauge } from 'k6/metrics';
import { options as chatOptions, setup as chatSetup } from './chat.ts';
import { options as fanoutOptions } from './fanout.ts';
import { authParams, config, durationEnv, gatewayGauge, intEnv, summaryTrendStats } from './lib/ripple.ts';

export { publisher, subscriber } from './fanout.ts';
export { chatMember } from './chat.ts';

if (!__ENV.DURATION) throw new Error('soak runs as long as asked: set DURATION (e.g. DURATION=1h)');
const chatMs = durationEnv('DURATION', '1h', 1000);

export const options = {
  summaryTrendStats,
  scenarios: {
    ...fanoutOptions.scenarios,
    members: chatOptions.scenarios.members,
    readers: {
      executor: 'constant-arrival-rate',
      exec: 'reader',
      rate: intEnv('READ_RATE', 5),
      timeUnit: '1s',
      duration: `${Math.ceil(chatMs / 1000)}s`,
      preAllocatedVUs: 2,
      maxVUs: 10,
    },
  },
  thresholds: {
    ...fanoutOptions.thresholds,
    ...chatOptions.thresholds,
    ripple_soak_leaked_connections: ['value==0'],
    ripple_soak_leaked_subscriptions: ['value==0'],
    ripple_soak_heap_growth_mb: [`value<=${intEnv('HEAP_GROWTH_MAX_MB', 64, 0)}`],
  },
};

const leakedConnections = new Gauge('ripple_soak_leaked_connections');
const leakedSubscriptions = new Gauge('ripple_soak_leaked_subscriptions');
const heapGrowth = new Gauge('ripple_soak_heap_growth_mb');

interface SoakData extends ReturnType<typeof chatSetup> {
  readonly baseline: { connections: number; subscriptions: number; heapBytes: number };
}

const gauges = () => ({
  connections: gatewayGauge('gateway_connections'),
  subscriptions: gatewayGauge('gateway_subscriptions'),
  heapBytes: gatewayGauge('nodejs_heap_size_used_bytes'),
});

export function setup(): SoakData {
  return { ...chatSetup(), baseline: gauges() };
}

/** One unread-count read by one of the fanout sockets' users. */
export function reader(data: SoakData): void {
  const user = `${data.prefix}-fan-${(exec.scenario.iterationInTest % 50) + 1}`;
  http.get(`${config.notificationUrl}/notifications/unread-count`, authParams(user, { name: 'GET unread-count' }));
}

/** Waits for the gateway's gauges to come back to the baseline, then records what did not. */
export function teardown(data: SoakData): void {
  const deadline = Date.now() + durationEnv('RECOVERY_TIMEOUT', '60s', 1000);
  let now = gauges();
  while (
    Date.now() < deadline &&
    (now.connections > data.baseline.connections || now.subscriptions > data.baseline.subscriptions)
  ) {
    sleep(1);
    now = gauges();
  }
  leakedConnections.add(Math.max(0, now.connections - data.baseline.connections));
  leakedSubscriptions.add(Math.max(0, now.subscriptions - data.baseline.subscriptions));
  heapGrowth.add((now.heapBytes - data.baseline.heapBytes) / 2 ** 20);
}
