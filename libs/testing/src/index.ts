import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { Writable } from 'node:stream';

/** Polls `probe` until it returns something other than undefined, or fails at the deadline. */
export async function waitFor<T>(
  what: string,
  deadlineMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Polls `check` until it is true, or fails at the deadline. */
export async function waitUntil(
  what: string,
  deadlineMs: number,
  check: () => boolean | Promise<boolean>,
): Promise<void> {
  await waitFor(what, deadlineMs, async () => ((await check()) ? true : undefined));
}

/** The Redis commands `registryCompleteIn` needs (an ioredis client fits). */
export interface RedisClock {
  get(key: string): Promise<string | null>;
  /** Redis `TIME`: [seconds, microseconds]. */
  time(): Promise<(string | number)[]>;
}

/**
 * Milliseconds until the gateways' registry under `keyPrefix` counts as complete, by Redis' clock:
 * its marker (`<prefix>{registry}:since`, written by the first heartbeat, see `registryMarkerKey`
 * in @ripple/registry) must be one lease (`leaseMs`, the gateway's REGISTRY_HEARTBEAT_MS × 3) old.
 * Until then a gateway routes every batch to every node through Redis Pub/Sub, itself included,
 * so a benchmark that wants the steady state waits this long first. Infinity while there is no
 * marker yet.
 */
export async function registryCompleteIn(redis: RedisClock, keyPrefix: string, leaseMs: number): Promise<number> {
  const [since, [seconds = Number.NaN, micros = 0]] = await Promise.all([
    redis.get(`${keyPrefix}{registry}:since`),
    redis.time(),
  ]);
  if (since === null) return Number.POSITIVE_INFINITY;
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  return Math.max(0, Number(since) + leaseMs - now);
}

/** A short random id for names a test owns (topics, key prefixes, databases, groups). */
export function runId(): string {
  return randomUUID().replace(/-/g, '').slice(0, 10);
}

/** Where the test infrastructure is (scripts/run-tests.mjs sets these). */
export const testInfra = {
  kafkaBrokers: (process.env.KAFKA_BROKERS ?? '127.0.0.1:9092').split(','),
  redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
  /** An admin URL: tests create and drop their own databases on this server. */
  databaseUrl: process.env.DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
};

/** The URL of database `name` on the test PostgreSQL server. */
export function testDatabaseUrl(name: string): string {
  const url = new URL(testInfra.databaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
/**
 * Creates the roles `names` (`LOGIN`, no other attribute) through `sql` (a pg `Client` or `Pool`
 * on a test database) and resolves to their clean-up: what they own and their privileges in that
 * database dropped (`DROP OWNED BY`), then the roles. Roles are the server's, not the database's:
 * put the run id in their names, and run the clean-up while the database still exists (privileges
 * elsewhere would keep a role from being dropped).
 */
export async function createTestRoles(
  sql: { query(text: string): Promise<unknown> },
  names: readonly string[],
): Promise<() => Promise<void>> {
  await sql.query(names.map((name) => `CREATE ROLE ${name} LOGIN;`).join(' '));
  return async () => {
    await sql.query(`DROP OWNED BY ${names.join(', ')}; DROP ROLE ${names.join(', ')}`);
  };
}

/** A Redis client as far as {@link deleteKeys} needs it (ioredis' `Redis` is one). */
export interface RedisKeyspace {
  scan(cursor: string, match: 'MATCH', pattern: string, count: 'COUNT', n: number): Promise<[string, string[]]>;
  unlink(...keys: string[]): Promise<number>;
}

/**
 * Deletes every key matching `pattern` (a SCAN MATCH glob: `bench:abc:*`), SCAN and UNLINK 500 at a
 * time; resolves with how many it deleted. Where KEYS and one DEL with every key as an argument
 * held Redis for the whole keyspace and, past ~100,000 keys (bench:e2e with 50,000 users), overflowed
 * the JavaScript stack and left the keys behind.
 */
export async function deleteKeys(redis: RedisKeyspace, pattern: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    if (keys.length > 0) deleted += await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
  return deleted;
}

export { cleanupAll } from './cleanup.js';
export type { CleanupStep } from './cleanup.js';
export { ENDING_SIGNALS, withCleanup } from './scope.js';
export type { CleanupScope } from './scope.js';
export { freePort, privateKafka } from './kafka-broker.js';
export type { PrivateKafka } from './kafka-broker.js';
export { cpuOf, cpuProfileArgs, onListening, schedOf } from './procs.js';
export { OpenApiContract } from './openapi.js';
export type { HttpExchange } from './openapi.js';
export { AsyncApiContract } from './asyncapi.js';
export type { ConsumedMessage } from './asyncapi.js';
export { assertPromtoolAccepts } from './promtool.js';

/** An HTTP answer as read off the wire by `rawHttp`. */
export interface RawAnswer {
  readonly status: number;
  readonly contentType: string | undefined;
  /** Every header of the answer, by lower-case name. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/**
 * Writes `raw` (a whole HTTP/1.1 request, as text) on a fresh TCP connection to 127.0.0.1:`port`
 * and resolves with the answer once the server closes the connection. `halfClose` (default true)
 * ends the writing side after the request; false keeps it open (a WebSocket upgrade the server
 * must answer before it sees the end). Rejects on a socket error.
 */
export function rawHttp(port: number, raw: string, halfClose = true): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => (halfClose ? socket.end(raw) : socket.write(raw)));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', body = ''] = text.split('\r\n\r\n');
      const headers = Object.fromEntries(
        head
          .split('\r\n')
          .slice(1)
          .map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]),
      );
      resolve({ status: Number(head.split(' ')[1]), contentType: headers['content-type'], headers, body });
    });
  });
}

/**
 * A writable stream that keeps each non-empty line written to it, in order: give it to a logger
 * (pino writes one JSON object per line) and read `lines` to see what was logged.
 */
export function logLines(): { readonly stream: Writable; readonly lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line !== '') lines.push(line);
      done();
    },
  });
  return { stream, lines };
}

/**
 * The raw text of a WebSocket opening handshake (RFC 6455 §4.1) for `path` (with its query
 * string), for tests that speak to a server over plain TCP to see its exact bytes.
 */
export function webSocketHandshake(path: string): string {
  return [
    `GET ${path} HTTP/1.1`,
    'Host: 127.0.0.1',
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    '',
    '',
  ].join('\r\n');
}
