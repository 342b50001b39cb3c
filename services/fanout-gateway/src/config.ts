import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { CommonEnv, ORIGINS, loadConfig } from '@ripple/config';

export const SERVICE_NAME = 'fanout-gateway';

/** The longest delay a Node timer takes (2^31-1 ms, ~24.8 days); every delay setting stays below it. */
const MAX_DELAY_MS = 2_147_483_647;

export const GatewayEnv = Type.Object({
  ...CommonEnv,
  PORT: Type.Integer({ default: 8080, minimum: 0, maximum: 65535 }),
  /**
   * Origins whose pages may open /ws (`*` or comma-separated; checked against the upgrade's
   * Origin header, defence in depth: the token is the authentication). Unset: any.
   */
  WS_ORIGINS: Type.Optional(Type.String({ pattern: ORIGINS })),
  /** Unique per process; defaults to hostname plus a random suffix. */
  NODE_ID: Type.String({
    default: `${hostname()}-${randomBytes(3).toString('hex')}`,
    pattern: '^[A-Za-z0-9_.-]{1,64}$',
  }),
  /** All gateway nodes share this consumer group. */
  KAFKA_GROUP_ID: Type.String({ default: 'fanout-gateway', minLength: 1 }),
  /**
   * A crashed node's partitions move to the others after this long, in ms (the broker's
   * group.min.session.timeout.ms, 6000 by default, is the floor). Heartbeats go every tenth of it.
   * Lower means faster takeover after a crash, but a node stalled longer than this (GC pause, CPU
   * starvation) is evicted and its partitions rebalanced although it was alive.
   */
  KAFKA_SESSION_TIMEOUT_MS: Type.Integer({ default: 6000, minimum: 1000, maximum: MAX_DELAY_MS }),
  /**
   * How long a rebalance waits for members to rejoin, in ms. After a broker restart the group
   * waits this long (or the session timeout, if shorter) for the members it knew before, so it
   * bounds how soon delivery resumes. Routing one event takes milliseconds, so members rejoin
   * well within it, and fetches long-poll for at most a quarter of it so that idle members
   * notice a rebalance in time; a node stalled longer misses the rebalance and causes another.
   */
  KAFKA_REBALANCE_TIMEOUT_MS: Type.Integer({ default: 1500, minimum: 500, maximum: MAX_DELAY_MS }),
  KAFKA_TOPIC_PARTITIONS: Type.Integer({ default: 6, minimum: 1 }),
  KAFKA_REPLICATION_FACTOR: Type.Integer({ default: 1, minimum: 1 }),
  /** Largest inbound WebSocket frame; bigger frames close the socket with 1009. */
  WS_MAX_PAYLOAD_BYTES: Type.Integer({ default: 64 * 1024, minimum: 256 }),
  /** Bytes queued to one socket before it is closed as a slow consumer (4009). */
  WS_SEND_BUFFER_BYTES: Type.Integer({ default: 1024 * 1024, minimum: 1024 }),
  /**
   * Bytes queued for all WebSocket clients together (not yet taken by the kernel) before the Kafka
   * consumer waits to write the next routed batch to sockets (backpressure; the batch stays
   * uncommitted meanwhile). A frame shared by many sockets counts once per socket.
   */
  WS_SEND_BUDGET_BYTES: Type.Integer({ default: 64 * 1024 * 1024, minimum: 64 * 1024 }),
  /**
   * How long such a wait may go on without that total falling (ms): past it, every socket that
   * has not drained at all for this long is closed as a slow consumer (4009), then the largest of
   * the rest until the total is within the budget.
   */
  WS_SEND_BUDGET_STALL_MS: Type.Integer({ default: 3000, minimum: 10, maximum: MAX_DELAY_MS }),
  /**
   * Bytes of frames received from other nodes that may wait for their turn to be written (behind
   * the send budget, in turn with this node's own batches). The node bus cannot be held back: a
   * message that would go past it is dropped and its channels are read from history instead.
   */
  NODE_BUS_QUEUE_BYTES: Type.Integer({ default: 64 * 1024 * 1024, minimum: 64 * 1024, maximum: 1024 * 1024 * 1024 }),
  WS_MAX_SUBSCRIPTIONS: Type.Integer({ default: 128, minimum: 1 }),
  /** Sustained inbound frames per second per connection, and the burst above it. */
  WS_RATE_PER_SEC: Type.Number({ default: 20, exclusiveMinimum: 0 }),
  WS_RATE_BURST: Type.Integer({ default: 50, minimum: 1 }),
  /** Rate-limited frames tolerated within 10 s before the socket is closed with 4008. */
  WS_ABUSE_LIMIT: Type.Integer({ default: 20, minimum: 1 }),
  /** The server pings each socket this often (and SSE sends a keep-alive); a silent peer is dropped. */
  WS_PING_INTERVAL_MS: Type.Integer({ default: 25_000, minimum: 100, maximum: MAX_DELAY_MS }),
  /** How long before a token expires the client gets `refresh_required`. */
  TOKEN_REFRESH_WINDOW_MS: Type.Integer({ default: 30_000, minimum: 0, maximum: MAX_DELAY_MS }),
  /** How often the node renews its registry leases; a lease lasts three intervals. */
  REGISTRY_HEARTBEAT_MS: Type.Integer({ default: 5000, minimum: 100, maximum: MAX_DELAY_MS }),
  /**
   * How long a connection's presence entry is leased (ms; at least a registry lease, three
   * heartbeats). Each heartbeat renews one share of the connections, so each is renewed three
   * times per presence lease: a heartbeat's Redis work does not grow with every connection. A
   * crashed node's entries are removed when a live node reaps it (about one registry lease),
   * else lapse after this.
   */
  PRESENCE_LEASE_MS: Type.Integer({ default: 60_000, minimum: 300, maximum: MAX_DELAY_MS }),
  /** Events kept per channel for recovery (approximately), and how long after the last event (up to a 16th more: HISTORY_TTL_SLACK). */
  HISTORY_SIZE: Type.Integer({ default: 1000, minimum: 10 }),
  HISTORY_TTL_MS: Type.Integer({ default: 3_600_000, minimum: 1000 }),
  /** Most events replayed on one subscribe; a longer gap is answered with recovered: false. */
  HISTORY_RECOVERY_LIMIT: Type.Integer({ default: 1000, minimum: 1 }),
  /**
   * How long the gateway remembers that a user left a chat room (to refuse subscription tokens
   * signed before): longer than chat-service's SUBSCRIPTION_TOKEN_TTL_S (at most one day).
   */
  CHAT_DEPARTURE_TTL_MS: Type.Integer({ default: 86_400_000 + 3_600_000, minimum: 1000 }),
  /** On SIGTERM, clients are told to reconnect spread over this window. */
  DRAIN_WINDOW_MS: Type.Integer({ default: 10_000, minimum: 0, maximum: MAX_DELAY_MS }),
  /**
   * After its last client moved, a draining node waits this long before it announces offline the
   * users who did not reconnect to another node (its users' presence is handed over meanwhile).
   */
  DRAIN_PRESENCE_GRACE_MS: Type.Integer({ default: 2000, minimum: 0, maximum: MAX_DELAY_MS }),
  /** post-service, which owns the follow graph: a `feed:` subscription loads the user's followees there. */
  POST_SERVICE_URL: Type.String({ default: 'http://127.0.0.1:3001', pattern: '^https?://' }),
  /** Longest wait for that list; past it the subscribe answers GW_FEED_UNAVAILABLE (retry). */
  FEED_LOAD_TIMEOUT_MS: Type.Integer({ default: 2000, minimum: 100, maximum: 60_000 }),
  /** Fault injection (tests and chaos runs only): every message to other nodes waits this long. */
  FAULT_NODE_BUS_DELAY_MS: Type.Integer({ default: 0, minimum: 0, maximum: 60_000 }),
  /**
   * Fault injection (tests and chaos runs only): connection set-up waits this long between
   * registering the connection and joining its own channel, so a close during set-up can be forced.
   */
  FAULT_SETUP_DELAY_MS: Type.Integer({ default: 0, minimum: 0, maximum: 60_000 }),
});

export type GatewayConfig = ReturnType<typeof loadGatewayConfig>;

export function loadGatewayConfig(env: Record<string, string | undefined> = process.env) {
  return loadConfig(GatewayEnv, env);
}
