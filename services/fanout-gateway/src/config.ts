import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { CommonEnv, loadConfig } from '@ripple/config';

export const SERVICE_NAME = 'fanout-gateway';

export const GatewayEnv = Type.Object({
  ...CommonEnv,
  PORT: Type.Integer({ default: 8080, minimum: 0, maximum: 65535 }),
  /** Unique per process; defaults to hostname plus a random suffix. */
  NODE_ID: Type.String({
    default: `${hostname()}-${randomBytes(3).toString('hex')}`,
    pattern: '^[A-Za-z0-9_.-]{1,64}$',
  }),
  /** All gateway nodes share this consumer group. */
  KAFKA_GROUP_ID: Type.String({ default: 'fanout-gateway', minLength: 1 }),
  /** A crashed node's partitions move to the others after this long (broker minimum: 6000). */
  KAFKA_SESSION_TIMEOUT_MS: Type.Integer({ default: 30_000, minimum: 1000 }),
  KAFKA_TOPIC_PARTITIONS: Type.Integer({ default: 6, minimum: 1 }),
  KAFKA_REPLICATION_FACTOR: Type.Integer({ default: 1, minimum: 1 }),
  /** Largest inbound WebSocket frame; bigger frames close the socket with 1009. */
  WS_MAX_PAYLOAD_BYTES: Type.Integer({ default: 64 * 1024, minimum: 256 }),
  /** Bytes queued to one socket before it is closed as a slow consumer (4009). */
  WS_SEND_BUFFER_BYTES: Type.Integer({ default: 1024 * 1024, minimum: 1024 }),
  WS_MAX_SUBSCRIPTIONS: Type.Integer({ default: 128, minimum: 1 }),
  /** Sustained inbound frames per second per connection, and the burst above it. */
  WS_RATE_PER_SEC: Type.Number({ default: 20, exclusiveMinimum: 0 }),
  WS_RATE_BURST: Type.Integer({ default: 50, minimum: 1 }),
  /** Rate-limited frames tolerated within 10 s before the socket is closed with 4008. */
  WS_ABUSE_LIMIT: Type.Integer({ default: 20, minimum: 1 }),
  /** The server pings each socket this often (and SSE sends a keep-alive); a silent peer is dropped. */
  WS_PING_INTERVAL_MS: Type.Integer({ default: 25_000, minimum: 100 }),
  /** How long before a token expires the client gets `refresh_required`. */
  TOKEN_REFRESH_WINDOW_MS: Type.Integer({ default: 30_000, minimum: 0 }),
  /** How often the node renews its registry leases; a lease lasts three intervals. */
  REGISTRY_HEARTBEAT_MS: Type.Integer({ default: 5000, minimum: 100 }),
  /** Events kept per channel for recovery (approximately), and how long after the last event. */
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
  DRAIN_WINDOW_MS: Type.Integer({ default: 10_000, minimum: 0 }),
  /** Fault injection (tests and chaos runs only): every message to other nodes waits this long. */
  FAULT_NODE_BUS_DELAY_MS: Type.Integer({ default: 0, minimum: 0, maximum: 60_000 }),
});

export type GatewayConfig = ReturnType<typeof loadGatewayConfig>;

export function loadGatewayConfig(env: Record<string, string | undefined> = process.env) {
  return loadConfig(GatewayEnv, env);
}
