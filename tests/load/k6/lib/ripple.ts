// What every Ripple k6 scenario shares: where the platform is, how VUs get tokens, the custom
// metrics, and a WebSocket session that keeps a delivery ledger per channel.
import { sleep } from 'k6';
import crypto from 'k6/crypto';
import encoding from 'k6/encoding';
import exec from 'k6/execution';
import http from 'k6/http';
import { WebSocket } from 'k6/experimental/websockets';
import type { ErrorEvent, MessageEvent } from 'k6/experimental/websockets';
import { Counter, Rate, Trend } from 'k6/metrics';
import { clearTimeout, setTimeout } from 'k6/timers';
import type { RefinedResponse, ResponseType } from 'k6/http';

function env(name: string, fallback: string): string {
  const value = __ENV[name];
  return value === undefined || value === '' ? fallback : value;
}

/**
 * An integer knob from the environment (`fallback` when unset), at least `min` (default 1: a
 * count of 0 would make a run that judges nothing); anything else aborts the run.
 */
export function intEnv(name: string, fallback: number, min = 1): number {
  const raw = __ENV[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min)
    throw new Error(`${name} must be an integer of at least ${min}, got "${raw}"`);
  return value;
}

/**
 * A k6 duration knob (`30s`, `2m`, `1h`, `500ms`) in milliseconds, at least `minMs` (default 0);
 * anything else aborts the run.
 */
export function durationEnv(name: string, fallback: string, minMs = 0): number {
  const raw = env(name, fallback);
  const match = /^(\d+)(ms|s|m|h)$/.exec(raw);
  if (!match) throw new Error(`${name} must be a duration such as 30s, 2m or 1h, got "${raw}"`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[match[2] as 'ms' | 's' | 'm' | 'h'];
  const ms = Number(match[1]) * unit;
  if (ms < minMs) throw new Error(`${name} must be at least ${minMs} ms, got "${raw}"`);
  return ms;
}

/** The platform under test (defaults: `bash scripts/start.sh` on this machine). */
export const config = {
  wsUrl: env('RIPPLE_WS_URL', 'ws://127.0.0.1:8080/ws'),
  postUrl: env('RIPPLE_POST_URL', 'http://127.0.0.1:3001'),
  chatUrl: env('RIPPLE_CHAT_URL', 'http://127.0.0.1:3002'),
  notificationUrl: env('RIPPLE_NOTIFICATION_URL', 'http://127.0.0.1:3003'),
};

/** What `setup()` hands every VU. */
export interface RunData {
  /** Prefix of every user id the run makes up, so runs (and real users) never share users. */
  readonly prefix: string;
}

/** USER_PREFIX, or a fresh one per run; call it in `setup()` so that every VU gets the same. */
export function runData(): RunData {
  return { prefix: env('USER_PREFIX', `k6${Date.now().toString(36)}`) };
}

/** The gateway's Prometheus endpoint, on the same port as its WebSocket. */
export const gatewayMetricsUrl = config.wsUrl.replace(/^ws/, 'http').replace(/\/ws(\?.*)?$/, '/metrics');

// ---- tokens ------------------------------------------------------------------------------------

/** The secret the platform uses when JWT_SECRET is unset outside production (libs/auth). */
const DEVELOPMENT_JWT_SECRET = 'ripple-development-secret-do-not-use-in-production';
const tokensFile = __ENV.TOKENS_FILE ? (JSON.parse(open(__ENV.TOKENS_FILE)) as Record<string, string>) : undefined;
const jwtSecret = env('JWT_SECRET', DEVELOPMENT_JWT_SECRET);
if (tokensFile === undefined && __VU === 0) {
  console.warn(
    '!!! DEVELOPMENT ONLY: this run mints its own access tokens from JWT_SECRET' +
      (__ENV.JWT_SECRET ? '' : ' (unset: the development secret)') +
      '. Never give a load generator a production signing secret; use TOKENS_FILE instead. !!!',
  );
}

const b64url = (text: string): string => encoding.b64encode(text, 'rawurl');

/**
 * An access token for `userId`: from TOKENS_FILE (a JSON object `{"<userId>": "<jwt>"}`) when set,
 * otherwise an HS256 JWT minted here from JWT_SECRET (development only), valid for `ttlSeconds`.
 */
export function accessToken(userId: string, ttlSeconds = 3600): string {
  if (tokensFile !== undefined) {
    const token = tokensFile[userId];
    if (token === undefined) throw new Error(`TOKENS_FILE has no token for user "${userId}"`);
    return token;
  }
  const now = Math.floor(Date.now() / 1000);
  const head = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const body = b64url(JSON.stringify({ sub: userId, iat: now, exp: now + ttlSeconds }));
  return `${head}.${body}.${crypto.hmac('sha256', jwtSecret, `${head}.${body}`, 'base64rawurl')}`;
}

/** Request parameters with the bearer token of `userId` (and a JSON content type when `json`). */
export function authParams(userId: string, tags: Record<string, string> = {}, json = false) {
  const headers: Record<string, string> = { authorization: `Bearer ${accessToken(userId)}` };
  if (json) headers['content-type'] = 'application/json';
  return { headers, tags };
}

/** A response body as text (empty when it has none or is binary). */
export function bodyText(res: { body: unknown }): string {
  return typeof res.body === 'string' ? res.body : '';
}

/** Failed requests this VU logged (the first few of each VU, so a broken run says why). */
let failuresLogged = 0;

/** POST `body` as JSON as `userId`; the response's JSON, or undefined when it has none. */
/**
 * Runs a set-up request (not a measured one) again while the platform sheds it: up to 5 attempts
 * while it answers 503, waiting its `Retry-After` seconds (1 s when absent, 5 s at most) between
 * them. A 503 from load shedding means the request was not processed, so repeating it is safe.
 * Returns the last response.
 */
export function retryWhileShed<T extends { res: { status: number; headers: Record<string, string> } }>(
  request: () => T,
): T {
  let answer = request();
  for (let attempt = 1; attempt < 5 && answer.res.status === 503; attempt++) {
    const seconds = Number(answer.res.headers['Retry-After']);
    sleep(Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds, 5) : 1);
    answer = request();
  }
  return answer;
}

export function postJson(
  url: string,
  userId: string,
  body: unknown,
  name: string,
): { res: RefinedResponse<ResponseType | undefined>; json: Record<string, unknown> | undefined } {
  const res = http.post(url, JSON.stringify(body), authParams(userId, { name }, true));
  let json: Record<string, unknown> | undefined;
  try {
    json = res.json() as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  if (res.status >= 400 && failuresLogged++ < 10) {
    console.warn(`${name} answered ${res.status} ${typeof json?.code === 'string' ? json.code : res.error}`);
  }
  return { res, json };
}

// ---- metrics -----------------------------------------------------------------------------------

export const metrics = {
  /** WebSocket open → `welcome` (authenticated, own channel joined), ms. */
  connectLatency: new Trend('ripple_ws_connect_latency', true),
  /** Share of connection attempts that reached `welcome`. */
  connectSuccess: new Rate('ripple_ws_connect_success'),
  /** `subscribe` sent → its `ack`, ms. */
  subscribeLatency: new Trend('ripple_subscribe_latency', true),
  /** Share of `subscribe` frames answered by an `ack` (not an `error`). */
  subscribeSuccess: new Rate('ripple_subscribe_success'),
  /** Start of the HTTP request that caused an event → the event on a socket, ms. */
  deliveryLatency: new Trend('ripple_delivery_latency', true),
  /** Events received on subscribed channels. */
  received: new Counter('ripple_events_received'),
  /** Events the ledger expected and never saw live (offset holes, and the tail found at the end). */
  missed: new Counter('ripple_events_missed'),
  /** An offset that arrived twice on one connection (the gateway promises each offset once). */
  duplicated: new Counter('ripple_events_duplicated'),
  /**
   * The same event (`event.id`) again under a new offset: delivery is at least once (after a
   * gateway crash or a Kafka rebalance), so this is allowed, and an app de-duplicates by id; it is
   * not counted as received.
   */
  redelivered: new Counter('ripple_events_redelivered'),
  /** `gap` frames and `recovered: false` answers (history lost: the app must refetch). */
  gaps: new Counter('ripple_gaps'),
  /**
   * Connections whose `welcome` k6 dropped (see WELCOME_GRACE_MS) and that a `ping` found up: not
   * a failure of the platform, counted so that a run says how often k6 did it.
   */
  welcomeDropped: new Counter('ripple_ws_welcome_dropped'),
  /** Socket closes the scenario did not ask for, e.g. 4009 slow consumer or 1001 drain. */
  unexpectedCloses: new Counter('ripple_ws_unexpected_closes'),
};

/** The Trend figures k6's end-of-test summary shows (p(99) is what the thresholds hold). */
export const summaryTrendStats = ['avg', 'min', 'med', 'max', 'p(90)', 'p(95)', 'p(99)', 'count'];

/** Thresholds every scenario with sockets shares: nothing missed, no duplicate, sockets connect. */
export const deliveryThresholds = {
  ripple_events_missed: ['count==0'],
  ripple_events_duplicated: ['count==0'],
  ripple_ws_connect_success: ['rate>0.99'],
  ripple_subscribe_success: ['rate>0.99'],
};

/** A body that carries its send time, so a receiver can measure delivery latency from it. */
export function stampedBody(label: string): string {
  return `${label} t=${Date.now()}`;
}

/** The send time `stampedBody` put in `text`, or undefined. */
export function stampOf(text: unknown): number | undefined {
  if (typeof text !== 'string') return undefined;
  const match = / t=(\d+)$/.exec(text);
  return match ? Number(match[1]) : undefined;
}

// ---- sessions ----------------------------------------------------------------------------------

interface Position {
  /** The subscription token the channel needs (chat rooms), for the end-of-run resubscribe. */
  token: string | undefined;
  epoch: string;
  offset: number;
  /** False once the end-of-run check unsubscribed it: later frames are the check's replay. */
  live: boolean;
  /** The latest event ids seen on the channel (at most RECENT_IDS), to tell redeliveries. */
  recent: Set<string>;
}

/**
 * k6's WebSocket (k6/experimental/websockets, k6 1.3) starts its reader before it queues the
 * `open` event, and drops a message read while the socket is still CONNECTING ("TODO maybe still
 * emit" in its queueMessage). The gateway writes `welcome` with its `101`, so on a loaded machine
 * k6 now and then reads and drops it: the socket is up and authenticated, and the script never
 * hears so (a subscriber that idled unseen through a whole fanout smoke: one socket's 36 posts
 * neither received nor missed). A session with no `welcome` this long after `open` asks with a
 * `ping`, and its `pong` stands in for the welcome (ms).
 */
const WELCOME_GRACE_MS = 1000;
/** How long a session waits for its probe's `pong` before it counts as failed (ms). */
const WELCOME_PROBE_MS = 10_000;
/** The request id of the welcome probe. */
const WELCOME_PROBE = 'welcome-probe';

/** How many recent event ids a socket remembers per channel (redeliveries come soon after). */
const RECENT_IDS = 1000;

interface Frame {
  op: string;
  id?: string;
  channel?: string;
  offset?: string;
  epoch?: string;
  recovered?: boolean;
  replayed?: number;
  code?: string;
  event?: { id: string; type: string; data: Record<string, unknown> };
}

export interface SessionOptions {
  /** Called for every event frame of a subscribed channel, after the ledger saw it. */
  onEvent?: (session: Session, channel: string, event: NonNullable<Frame['event']>) => void;
  /** Called once, on `welcome`. */
  onWelcome?: (session: Session) => void;
}

/**
 * One WebSocket connection of `userId` that keeps a ledger per subscribed channel: offsets must
 * follow each other (1, 2, 3… within an epoch); a hole counts as missed, a repeat as duplicated, a
 * `gap` frame as a signalled gap. `verifyAndClose` asks the gateway, with `since`, what the socket
 * should have had by now, and counts whatever it replays as missed.
 */
export class Session {
  readonly socket: WebSocket;
  private readonly positions = new Map<string, Position>();
  private readonly pending = new Map<string, { sentAt: number; done: (frame: Frame) => void }>();
  private nextId = 1;
  private opened = 0;
  private welcomed = false;
  private closing = false;
  /** The end-of-run check runs: its acks are not subscribe latencies. */
  private checking = false;

  constructor(
    readonly userId: string,
    private readonly options: SessionOptions = {},
  ) {
    const url = `${config.wsUrl}${config.wsUrl.includes('?') ? '&' : '?'}access_token=${accessToken(userId)}`;
    const startedAt = Date.now();
    this.socket = new WebSocket(url);
    this.socket.addEventListener('open', () => {
      this.opened = Date.now();
      setTimeout(() => this.probeWelcome(), WELCOME_GRACE_MS);
    });
    this.socket.addEventListener('message', (e: MessageEvent | ErrorEvent) => {
      if ('data' in e && typeof e.data === 'string') this.onFrame(JSON.parse(e.data) as Frame, startedAt);
    });
    this.socket.addEventListener('close', () => {
      if (!this.welcomed && !this.closing) metrics.connectSuccess.add(false);
      else if (!this.closing) metrics.unexpectedCloses.add(1);
    });
    this.socket.addEventListener('error', () => undefined);
  }

  /** Sends `subscribe` (with a chat subscription `token` when given); `then` gets the ack or error. */
  subscribe(channel: string, token?: string, then?: (frame: Frame) => void): void {
    this.request({ op: 'subscribe', channel, ...(token ? { token } : {}) }, (frame) => {
      metrics.subscribeSuccess.add(frame.op === 'ack');
      if (frame.op === 'ack') this.positions.set(channel, { token, ...this.positionOf(frame) });
      then?.(frame);
    });
  }

  /** Sends `frame` with a fresh `id`; `done` gets the answer that echoes it. */
  request(frame: Record<string, unknown>, done: (answer: Frame) => void): void {
    const id = String(this.nextId++);
    this.pending.set(id, { sentAt: Date.now(), done });
    this.socket.send(JSON.stringify({ ...frame, id }));
  }

  /**
   * Ends the session: for every channel, unsubscribes and resubscribes with `since` its last
   * position; what the gateway would replay is what this socket missed. Closes after the answers
   * (or `deadlineMs`).
   */
  verifyAndClose(deadlineMs = 10_000): void {
    const channels = [...this.positions.keys()];
    let left = channels.length;
    const finish = () => {
      this.closing = true;
      clearTimeout(timer);
      this.socket.close();
    };
    const timer = setTimeout(() => {
      // Unanswered checks: count what we cannot vouch for as missed rather than pass silently.
      metrics.missed.add(left);
      finish();
    }, deadlineMs);
    if (left === 0) return finish();
    this.checking = true;
    for (const channel of channels) {
      const position = this.positions.get(channel) as Position;
      this.request({ op: 'unsubscribe', channel }, () => {
        position.live = false;
        this.request(
          {
            op: 'subscribe',
            channel,
            since: { offset: String(position.offset), epoch: position.epoch },
            ...(position.token ? { token: position.token } : {}),
          },
          (ack) => {
            if (ack.op !== 'ack') {
              console.warn(`${this.userId} could not check ${channel}: ${ack.code}`);
              metrics.missed.add(1);
            } else if (ack.recovered === false) metrics.gaps.add(1);
            else if ((ack.replayed ?? 0) > 0) {
              console.warn(
                `${this.userId} never got ${ack.replayed} event(s) of ${channel} after offset ${position.offset}`,
              );
              metrics.missed.add(ack.replayed ?? 0);
            }
            if (--left === 0) finish();
          },
        );
      });
    }
  }

  /** The connection is up and authenticated: the session starts. */
  private welcome(): void {
    this.welcomed = true;
    metrics.connectSuccess.add(true);
    this.options.onWelcome?.(this);
  }

  /**
   * Asks the gateway with a `ping` whether this socket, open for WELCOME_GRACE_MS without a
   * `welcome`, is up (see WELCOME_GRACE_MS); one that does not answer within WELCOME_PROBE_MS
   * more counts as a failed connection and is closed, rather than idling unseen to the end.
   */
  private probeWelcome(): void {
    if (this.welcomed || this.closing || this.socket.readyState !== 1 /* OPEN */) return;
    this.socket.send(JSON.stringify({ op: 'ping', id: WELCOME_PROBE }));
    setTimeout(() => {
      if (this.welcomed || this.closing) return;
      console.warn(`${this.userId}: no welcome, and no answer to a ping ${WELCOME_PROBE_MS} ms after it`);
      metrics.connectSuccess.add(false);
      this.close();
    }, WELCOME_PROBE_MS);
  }

  /** Closes the socket without the end-of-run check. */
  close(): void {
    this.closing = true;
    this.socket.close();
  }

  private positionOf(frame: Frame) {
    return { epoch: frame.epoch ?? '', offset: Number(frame.offset ?? '0'), live: true, recent: new Set<string>() };
  }

  private onFrame(frame: Frame, startedAt: number): void {
    if (frame.op === 'welcome') {
      if (this.welcomed) return; // its probe's pong came first
      metrics.connectLatency.add(Date.now() - (this.opened || startedAt));
      this.welcome();
      return;
    }
    if (frame.op === 'pong' && frame.id === WELCOME_PROBE && !this.welcomed) {
      metrics.welcomeDropped.add(1);
      this.welcome();
      return;
    }
    if (frame.id !== undefined && (frame.op === 'ack' || frame.op === 'error')) {
      const waiting = this.pending.get(frame.id);
      if (waiting) {
        this.pending.delete(frame.id);
        if (frame.channel !== undefined && frame.op === 'ack' && !this.checking) {
          metrics.subscribeLatency.add(Date.now() - waiting.sentAt);
        }
        waiting.done(frame);
      }
      return;
    }
    const position = frame.channel === undefined ? undefined : this.positions.get(frame.channel);
    // Events of the user's own channel are not in the ledger, nor the end-of-run check's replay.
    if (position === undefined || !position.live || frame.channel === undefined) return;
    if (frame.op === 'gap') {
      metrics.gaps.add(1);
      Object.assign(position, this.positionOf(frame));
      return;
    }
    if (frame.op !== 'event' || frame.event === undefined) return;
    const offset = Number(frame.offset);
    if (frame.epoch !== position.epoch) {
      // A new epoch without a `gap` frame before it: the gateway broke its promise.
      console.warn(`${this.userId} got epoch ${frame.epoch} of ${frame.channel} in ${position.epoch} without a gap`);
      metrics.missed.add(1);
      position.epoch = frame.epoch ?? '';
    } else if (offset <= position.offset) {
      metrics.duplicated.add(1);
      return;
    } else if (offset > position.offset + 1) {
      console.warn(`${this.userId} got offset ${offset} of ${frame.channel} after ${position.offset}`);
      metrics.missed.add(offset - position.offset - 1);
    }
    position.offset = offset;
    if (position.recent.has(frame.event.id)) {
      metrics.redelivered.add(1);
      return;
    }
    position.recent.add(frame.event.id);
    if (position.recent.size > RECENT_IDS) position.recent.delete(position.recent.values().next().value as string);
    metrics.received.add(1);
    this.options.onEvent?.(this, frame.channel, frame.event);
  }
}

/**
 * This VU's index in its scenario, 0 … vus − 1, in a `per-vu-iterations` scenario of one iteration
 * per VU (its iteration number in the scenario). Not `exec.vu.idInTest`: VU ids number the VUs of
 * every scenario in the order k6 initialises them, so another scenario's VUs can take ids in
 * between (seen: fanout subscribers 1–19 and 21, which shared 20 sockets 9/11 over the creators).
 */
export function scenarioIndex(): number {
  return exec.scenario.iterationInTest;
}

/** `count` distinct indexes in [0, size) for `seed`, so that consecutive seeds share the indexes out evenly. */
export function pick(seed: number, count: number, size: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < Math.min(count, size); i++) out.push((seed * count + i) % size);
  return out;
}

/** Reads the gateway's Prometheus text and returns the sum of every sample of `name`. */
export function gatewayGauge(name: string): number {
  const res = http.get(gatewayMetricsUrl, { tags: { name: 'gateway metrics' } });
  let sum = 0;
  for (const line of bodyText(res).split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`))
      sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}
