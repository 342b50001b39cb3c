// Connect storm: ramps to VUS sockets that connect, authenticate and subscribe to their creator
// channel, hold them, then close. Measures connect latency (open → welcome) and success rate.
//
// Knobs (environment):
//   VUS        peak sockets                                  (default 200)
//   DURATION   ramp-up time to VUS                           (default 20s)
//   HOLD       how long each socket stays connected, and how long VUS sockets are held at the
//              peak after the ramp                           (default 10s)
//   CONNECT_P99_MS  threshold on connect latency p99, ms     (default 1000)
// Common: RIPPLE_WS_URL, JWT_SECRET or TOKENS_FILE, USER_PREFIX (see lib/ripple.ts and README).
import exec from 'k6/execution';
import { setTimeout } from 'k6/timers';
import { Session, deliveryThresholds, durationEnv, intEnv, runData, summaryTrendStats } from './lib/ripple.ts';
import type { RunData } from './lib/ripple.ts';

const vus = intEnv('VUS', 200);
const holdMs = durationEnv('HOLD', '10s');

export const options = {
  summaryTrendStats,
  scenarios: {
    storm: {
      executor: 'ramping-vus',
      exec: 'connectStorm',
      startVUs: 0,
      // Ramp, then hold the peak for HOLD so that VUS sockets are connected at once (a ramp alone
      // reaches VUS only at its last instant).
      stages: [
        { duration: __ENV.DURATION || '20s', target: vus },
        { duration: `${Math.ceil(holdMs / 1000)}s`, target: vus },
      ],
      gracefulRampDown: `${Math.ceil(holdMs / 1000) + 15}s`,
    },
  },
  thresholds: {
    ...deliveryThresholds,
    ripple_ws_connect_latency: [`p(99)<${intEnv('CONNECT_P99_MS', 1000, 0)}`],
    ripple_ws_unexpected_closes: ['count==0'],
  },
};

export const setup = runData;

export function connectStorm(data: RunData): void {
  const user = `${data.prefix}-storm-${exec.vu.idInTest}-${exec.vu.iterationInScenario}`;
  new Session(user, {
    onWelcome: (session) => {
      session.subscribe(`creator:${user}`);
      setTimeout(() => session.verifyAndClose(), holdMs);
    },
  });
}
