// Fanout: SOCKETS sockets each subscribe to CHANNELS_PER_SOCKET of CREATORS creator channels;
// publisher VUs post over HTTP at RATE posts/s as those creators. Every socket measures
// POST → receive latency (`ripple_delivery_latency`, from the start of the HTTP request) and keeps
// a ledger of its channels' offsets: a hole, a repeat or a tail it never saw (checked at the end
// by resubscribing with `since`) fails the run.
//
// Knobs (environment):
//   VUS                  sockets                                      (default 100)
//   CREATORS             creator channels                             (default 20)
//   CHANNELS_PER_SOCKET  subscriptions per socket                     (default 5)
//   RATE                 posts per second, all creators together      (default 20)
//   DURATION             publishing time                              (default 30s)
//   WARMUP               time for sockets to subscribe before posting (default 5s; a
//                        subscription acknowledged later fails the run: raise WARMUP)
//   SETTLE               time after the last post before the check    (default 5s)
//   DELIVERY_P99_MS      threshold on delivery latency p99, ms        (default 500)
// A creator posts RATE/CREATORS times a second: keep it under RATE_LIMIT_MAX per minute of the
// post-service (default 300/min = 5/s), or raise that limit.
// Common: RIPPLE_WS_URL, RIPPLE_POST_URL, JWT_SECRET or TOKENS_FILE, USER_PREFIX.
import { check } from 'k6';
import exec from 'k6/execution';
import { Counter } from 'k6/metrics';
import { setTimeout } from 'k6/timers';
import {
  Session,
  config,
  deliveryThresholds,
  durationEnv,
  intEnv,
  metrics,
  pick,
  postJson,
  runData,
  scenarioIndex,
  stampOf,
  stampedBody,
  summaryTrendStats,
} from './lib/ripple.ts';
import type { RunData } from './lib/ripple.ts';

const sockets = intEnv('VUS', 100);
const creators = intEnv('CREATORS', 20);
const perSocket = intEnv('CHANNELS_PER_SOCKET', 5);
const rate = intEnv('RATE', 20);
const warmupMs = durationEnv('WARMUP', '5s');
const publishMs = durationEnv('DURATION', '30s', 1000);
const settleMs = durationEnv('SETTLE', '5s');
const seconds = (ms: number) => `${Math.ceil(ms / 1000)}s`;

/**
 * Subscriptions acknowledged after posting began: a post before its ack is in the ack's offset,
 * so the socket rightly never gets it, and "every post reached every subscriber" no longer holds.
 * Any of them means WARMUP is too short for VUS sockets; the run fails and says so.
 */
const lateSubscriptions = new Counter('ripple_late_subscriptions');

const creator = (data: RunData, index: number) => `${data.prefix}-creator-${index}`;

export const options = {
  summaryTrendStats,
  scenarios: {
    subscribers: {
      executor: 'per-vu-iterations',
      exec: 'subscriber',
      vus: sockets,
      iterations: 1,
      maxDuration: seconds(warmupMs + publishMs + settleMs + 30_000),
    },
    publishers: {
      executor: 'constant-arrival-rate',
      exec: 'publisher',
      rate,
      timeUnit: '1s',
      duration: seconds(publishMs),
      startTime: seconds(warmupMs),
      // Enough VUs for requests that take up to a few seconds under load, so k6 drops none.
      preAllocatedVUs: Math.max(2, Math.ceil(rate / 5)),
      maxVUs: Math.max(20, rate * 4),
    },
  },
  thresholds: {
    ...deliveryThresholds,
    ripple_delivery_latency: [`p(99)<${intEnv('DELIVERY_P99_MS', 500, 0)}`],
    ripple_ws_unexpected_closes: ['count==0'],
    ripple_late_subscriptions: ['count==0'],
    'http_req_failed{scenario:publishers}': ['rate<0.01'],
    'checks{check:post accepted}': ['rate>0.99'],
  },
};

/** One socket: subscribes to its creators, records every post it gets, checks its ledger at the end. */
export const setup = runData;

export function subscriber(data: RunData): void {
  const vu = scenarioIndex() + 1;
  new Session(`${data.prefix}-fan-${vu}`, {
    onWelcome: (session) => {
      const postingStarts = exec.scenario.startTime + warmupMs;
      for (const index of pick(vu, perSocket, creators)) {
        session.subscribe(`creator:${creator(data, index)}`, undefined, () => {
          if (Date.now() >= postingStarts) lateSubscriptions.add(1);
        });
      }
      setTimeout(() => session.verifyAndClose(), warmupMs + publishMs + settleMs);
    },
    onEvent: (_session, _channel, event) => {
      const sentAt = stampOf(event.data.body);
      if (event.type === 'post.created' && sentAt !== undefined) metrics.deliveryLatency.add(Date.now() - sentAt);
    },
  });
}

/** One post by the next creator in turn. */
export function publisher(data: RunData): void {
  const author = creator(data, exec.scenario.iterationInTest % creators);
  const { res } = postJson(`${config.postUrl}/posts`, author, { body: stampedBody('k6 fanout') }, 'POST /posts');
  check(res, { 'post accepted': (r) => r.status === 201 });
}
