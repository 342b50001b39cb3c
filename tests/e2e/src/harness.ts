import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { constants, loadavg } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { WebSocket } from 'ws';
import { signAccessToken } from '@ripple/auth';
import { dropDatabase } from '@ripple/db';
import { Topics, createEvent, toOutboxMessage } from '@ripple/events';
import { createEventConsumer, createKafka, deleteGroups, deleteTopics, dlqTopicOf, readTopics } from '@ripple/kafka';
import type { EventConsumer, EventProducer, KafkaClient, TopicReader, TopicReaderOptions } from '@ripple/kafka';
import { createLogger } from '@ripple/telemetry';
import {
  AsyncApiContract,
  cleanupAll,
  deleteKeys,
  ENDING_SIGNALS,
  OpenApiContract,
  onListening,
  runId,
  schedOf,
  testDatabaseUrl,
  testInfra,
  waitFor,
  waitUntil,
  withCleanup,
} from '@ripple/testing';
import type { CleanupScope, HttpExchange } from '@ripple/testing';
import { checkSseEvent, checkWebSocketFrame, gatewayFrameContract, readSseEvents } from './frame-contract.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface RunningService {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly process: ChildProcess;
  /** Everything the process printed so far (for failure messages). */
  output(): string;
  /** Sends `signal` and resolves with the exit code once the process is gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Every service process this process spawned and that still runs. */
const children = new Set<ChildProcess>();
// Last resort, whatever way this process ends (a crash, process.exit in a signal handler):
// no spawned service outlives it.
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});
// A signal (Ctrl-C, a CI runner's or a test runner's SIGTERM) ends a process without 'exit' by
// default, and its services ran on, orphaned: end it through 'exit' instead. A script that
// handles the signal itself (runScoped: it cleans up, then exits) is left to do so.
for (const signal of ENDING_SIGNALS) {
  process.on(signal, () => {
    if (process.listenerCount(signal) === 1) process.exit(128 + constants.signals[signal]);
  });
}

/**
 * How long a service may take to start, in ms of time it could have run (see {@link spawnService}):
 * E2E_START_DEADLINE_MS, else 60 s.
 */
export function startDeadlineMs(): number {
  const raw = process.env.E2E_START_DEADLINE_MS;
  const ms = Number(raw ?? 60_000);
  if (!Number.isInteger(ms) || ms < 1) throw new Error(`E2E_START_DEADLINE_MS must be a positive integer, got ${raw}`);
  return ms;
}

/** A start deadline stretched by CPU starvation still ends after this many times its wall-clock length. */
const START_DEADLINE_STRETCH = 10;

/**
 * Spawns a real service process (`services/<name>/dist/main.js`) with `env` on top of ours, and
 * resolves once it logged that it listens. PORT defaults to 0 so parallel runs never collide.
 *
 * `deadlineMs` (default {@link startDeadlineMs}) counts the time the process could have run: wall
 * time minus the time its main thread was runnable but waiting for a CPU (schedstat). On a loaded
 * machine a starting process gets a few percent of a core, and a wall-clock deadline failed healthy
 * starts (60 s at load 35+ on 2 cores); a process that hangs (waits on a socket, a lock, a broker
 * that never answers) does not wait for a CPU, so it still fails after `deadlineMs`. Whatever the
 * load, it fails after {@link START_DEADLINE_STRETCH} × `deadlineMs` of wall time.
 */
export function spawnService(
  name: string,
  env: Record<string, string>,
  deadlineMs = startDeadlineMs(),
  /** Node options for the child that NODE_OPTIONS refuses (`--cpu-prof`). */
  nodeArgs: readonly string[] = [],
): Promise<RunningService> {
  const child = spawn(process.execPath, [...nodeArgs, `services/${name}/dist/main.js`], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let output = '';
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }),
  );
  const startedAt = Date.now();
  const waitedAtStart = schedOf(child.pid)?.waitMs ?? 0;
  return new Promise((resolve, reject) => {
    const timer = setInterval(
      () => {
        const wallMs = Date.now() - startedAt;
        const waitedMs = (schedOf(child.pid)?.waitMs ?? waitedAtStart) - waitedAtStart;
        if (wallMs - waitedMs <= deadlineMs && wallMs <= START_DEADLINE_STRETCH * deadlineMs) return;
        clearInterval(timer);
        child.kill('SIGKILL');
        const load = loadavg()[0]?.toFixed(1) ?? '?';
        reject(
          new Error(
            `${name} did not start within ${deadlineMs} ms (${wallMs} ms of wall time, ${Math.round(waitedMs)} ms of it waiting for a CPU; load average ${load}):\n${output}`,
          ),
        );
      },
      Math.min(1000, deadlineMs),
    );
    // Lines are parsed only until the "listening" one: bench:http's load generator reads the
    // service's output in its own process.
    const listening = (port: number): void => {
      clearInterval(timer);
      resolve({
        name,
        port,
        url: `http://127.0.0.1:${port}`,
        process: child,
        output: () => output,
        stop: (signal = 'SIGTERM') => {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    };
    // E2E_LOG_DIR=<dir> keeps every spawned process's output for debugging.
    const logDir = process.env.E2E_LOG_DIR;
    if (logDir) {
      const file = createWriteStream(`${logDir}/${name}-${child.pid}.log`);
      child.stdout.pipe(file);
      child.stderr.pipe(file);
    }
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    onListening(child.stdout, listening);
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    void exited.then((code) => {
      clearInterval(timer);
      reject(new Error(`${name} exited with ${code} before listening:\n${output}`));
    });
  });
}

/**
 * Publishes `count` `post.created` events by `authorId` straight to Kafka (topics under
 * `topicPrefix`), in batches of 100; resolves with their event ids in publishing order.
 */
/**
 * A member of consumer group `groupId` stuck in its handler: it joins first (every partition of
 * `topics`), is handed one `post.created` event (published under `topicPrefix`), and stays in its
 * handler until `release`. Meanwhile it does not rejoin, so a rebalance (another member joining)
 * waits for it, up to its 180 s rebalance timeout. Its session (`sessionTimeoutMs`, 180 s) outlasts
 * the wait; it heartbeats every tenth of it, and learns of a rebalance at its first heartbeat after
 * `release`. `stop` releases it and stops it.
 */
export async function stuckMember(opts: {
  kafka: KafkaClient;
  producer: EventProducer;
  groupId: string;
  topics: readonly string[];
  topicPrefix: string;
  sessionTimeoutMs?: number;
}): Promise<{ consumer: EventConsumer; release: () => void; stop: () => Promise<void> }> {
  let release = (): void => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  let handling = false;
  const consumer = createEventConsumer({
    kafka: opts.kafka,
    groupId: opts.groupId,
    topics: opts.topics,
    logger: createLogger('stuck-member', 'silent'),
    dlqProducer: opts.producer,
    startAt: 'earliest',
    sessionTimeoutMs: opts.sessionTimeoutMs ?? 180_000,
    rebalanceTimeoutMs: 180_000,
    onEvent: async () => {
      handling = true;
      await released;
    },
  });
  await consumer.start();
  await publishPostEvents(opts.producer, opts.topicPrefix, `stuck-${runId()}`, 1);
  await waitUntil('the member to be stuck in its handler', 20_000, () => handling);
  return {
    consumer,
    release,
    stop: () => {
      release();
      return consumer.stop();
    },
  };
}

export async function publishPostEvents(
  producer: EventProducer,
  topicPrefix: string,
  authorId: string,
  count: number,
  body = 'x',
): Promise<string[]> {
  const events = Array.from({ length: count }, () =>
    createEvent('post.created', {
      source: 'e2e',
      data: { postId: randomBytes(6).toString('hex'), authorId, body, createdAt: new Date().toISOString() },
    }),
  );
  for (let i = 0; i < events.length; i += 100) {
    await producer.send(
      events.slice(i, i + 100).map((e) => {
        const m = toOutboxMessage(e);
        return { ...m, topic: topicPrefix + m.topic };
      }),
    );
  }
  return events.map((e) => e.id);
}

/** An HTTP answer of a domain service, read whole. */
export interface ApiAnswer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  /** The body parsed as JSON. */
  // The caller names the body's shape, as with fetch's own res.json().
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
  json<T = Record<string, unknown>>(): T;
}

const contracts = new Map<string, Promise<OpenApiContract>>();

/**
 * Checks one HTTP answer of the service at `baseUrl` (`http://127.0.0.1:3001`) against the
 * OpenAPI document it serves at /docs/json (fetched and validated once per service).
 */
export async function checkHttpAnswer(baseUrl: string, exchange: HttpExchange): Promise<void> {
  let contract = contracts.get(baseUrl);
  if (!contract) {
    // A loaded service may shed this request too (503): ask until the document comes.
    contract = waitFor(`${baseUrl}/docs/json`, 30_000, async () => {
      const res = await fetch(`${baseUrl}/docs/json`);
      return res.status === 200 ? await res.json() : undefined;
    }).then((doc) => OpenApiContract.load(doc));
    contracts.set(baseUrl, contract);
  }
  (await contract).check(exchange);
}

/**
 * Calls a service's HTTP API (a domain service or the gateway; `token`: sent as a bearer token;
 * `body`: sent as JSON, or as is when a string) and checks the answer against the OpenAPI document
 * that service serves at /docs/json: a status, body or route the document does not promise fails
 * the test, whatever the test itself asserts next.
 */
export async function callApi(
  service: Pick<RunningService, 'url'>,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<ApiAnswer> {
  const raw = typeof opts.body === 'string';
  const res = await fetch(`${service.url}${path}`, {
    method,
    headers: {
      ...(opts.token !== undefined && { authorization: `Bearer ${opts.token}` }),
      ...(opts.body !== undefined && !raw && { 'content-type': 'application/json' }),
      ...opts.headers,
    },
    ...(opts.body !== undefined && { body: raw ? (opts.body as string) : JSON.stringify(opts.body) }),
  });
  const text = await res.text();
  await checkHttpAnswer(service.url, {
    method,
    url: path,
    status: res.status,
    contentType: res.headers.get('content-type') ?? undefined,
    body: text,
  });
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
  return { status: res.status, headers: res.headers, text, json: <T>() => JSON.parse(text) as T };
}

let eventContract: Promise<AsyncApiContract> | undefined;

/**
 * `readTopics` whose every record is checked against docs/asyncapi.yaml (parsed once with
 * @asyncapi/parser): its channel, message type, content type, headers and payload. A record the
 * document does not allow is still handed to `onMessage`, and `stop` then rejects with the
 * first violation, so the test (or its `after` hook) fails.
 */
export async function readCheckedTopics(
  kafka: KafkaClient,
  opts: Omit<TopicReaderOptions, 'onBatch'> & Required<Pick<TopicReaderOptions, 'onMessage'>>,
): Promise<TopicReader> {
  const contract = await (eventContract ??= AsyncApiContract.load(new URL('docs/asyncapi.yaml', `file://${ROOT}`)));
  const violations: Error[] = [];
  const reader = await readTopics(kafka, {
    ...opts,
    onMessage: (message) => {
      try {
        contract.check({ topic: message.topic, headers: message.headers, value: message.value?.toString() ?? '' });
      } catch (err) {
        violations.push(err as Error);
      }
      opts.onMessage(message);
    },
  });
  return {
    stop: async () => {
      await reader.stop();
      if (violations[0]) throw violations[0];
    },
  };
}

/**
 * A WebSocket client that records every frame it receives. Every frame is checked on arrival
 * against docs/asyncapi-gateway.yaml (the `/ws` channel's message named by its `op`): a frame the
 * protocol document does not allow fails the next `frame`, `closed` or `close`.
 */
export class TestClient {
  readonly frames: Record<string, unknown>[] = [];
  /** Frames the protocol document does not allow. */
  readonly violations: Error[] = [];
  closeCode: number | undefined;
  closeReason = '';
  private constructor(readonly socket: WebSocket) {
    void gatewayFrameContract();
    socket.on('message', (data: Buffer) => {
      const frame = checkWebSocketFrame(data.toString('utf8'), this.violations);
      if (frame) this.frames.push(frame);
    });
    socket.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
    });
  }

  static connect(url: string, headers: Record<string, string> = {}): TestClient {
    return new TestClient(new WebSocket(url, { headers }));
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  private async conforming(): Promise<void> {
    await gatewayFrameContract();
    if (this.violations[0]) throw this.violations[0];
  }

  /** Waits for the first frame that satisfies `match` (failing on a frame the contract refuses). */
  async frame(match: (f: Record<string, unknown>) => boolean, deadlineMs = 20_000): Promise<Record<string, unknown>> {
    await this.conforming();
    const found = await waitFor('a matching frame', deadlineMs, () => {
      if (this.violations[0]) throw this.violations[0];
      return this.frames.find(match);
    });
    await this.conforming();
    return found;
  }

  async closed(deadlineMs = 10_000): Promise<number> {
    const code = await waitFor('the socket to close', deadlineMs, () => this.closeCode);
    await this.conforming();
    return code;
  }

  /** Closes the socket; throws the first frame the contract refused, if any. */
  close(): void {
    this.socket.close();
    if (this.violations[0]) throw this.violations[0];
  }
}

/** An `event` frame as a test reads it. */
export type EventFrame = { op: 'event'; channel: string; offset: string; epoch: string; event: { id: string } };

/** The `event` frames `client` received on `channel`, in arrival order. */
export function eventFramesOn(client: TestClient, channel: string): EventFrame[] {
  return client.frames.filter((f): f is EventFrame => f.op === 'event' && f.channel === channel);
}

/**
 * Opens a WebSocket to the gateway listening on `at.port` as `userId` (an access token signed with
 * `secret`), adds it to `clients` (for the after hook to close) and resolves once its `welcome`
 * came.
 */
export async function connectClient(
  at: { readonly port: number },
  secret: Parameters<typeof signAccessToken>[0],
  userId: string,
  clients: TestClient[],
): Promise<TestClient> {
  const client = TestClient.connect(
    `ws://127.0.0.1:${at.port}/ws?access_token=${await signAccessToken(secret, userId)}`,
  );
  clients.push(client);
  await client.frame((f) => f.op === 'welcome');
  return client;
}

/** Sends `subscribe` (from `since` when given) and resolves with its `ack`. */
export async function subscribeClient(
  client: TestClient,
  channel: string,
  since?: { offset: string; epoch: string },
): Promise<Record<string, unknown>> {
  const id = randomBytes(4).toString('hex');
  client.send({ op: 'subscribe', id, channel, ...(since && { since: { offset: since.offset, epoch: since.epoch } }) });
  return client.frame((f) => f.op === 'ack' && f.id === id);
}

/** The sum of every sample of metric `name` on a service's `/metrics` (0 when it has none). */
export async function metricSum(service: RunningService, name: string): Promise<number> {
  const text = await (await fetch(`${service.url}/metrics`)).text();
  const samples = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].map((m) => Number(m[1]));
  return samples.reduce((a, b) => a + b, 0);
}

/** One Server-Sent Event with JSON data. */
export interface SseMessage {
  readonly id?: string;
  readonly event?: string;
  readonly data: Record<string, unknown>;
}

/** An open (or refused) `/sse` stream, read as it arrives. */
export interface SseStream {
  readonly status: number;
  readonly headers: Headers;
  /** The events so far (comments skipped), each checked against docs/asyncapi-gateway.yaml. */
  readonly messages: SseMessage[];
  /** Events the protocol document does not allow. */
  readonly violations: Error[];
  /** Whether the server ended the stream; throws the first violation, if any. */
  readonly ended: () => boolean;
  /** Closes the stream; throws the first violation, if any. */
  readonly abort: () => void;
}

/**
 * Opens a Server-Sent Events stream of a gateway and parses its events into `messages` as they
 * arrive. The HTTP answer is checked against the gateway's /docs/json (a refusal's body too),
 * and every event against the `/sse` channel of docs/asyncapi-gateway.yaml: a violation fails
 * `ended()` and `abort()`.
 */
export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  const controller = new AbortController();
  const target = new URL(url);
  await gatewayFrameContract();
  const response = await fetch(url, { signal: controller.signal, headers });
  const messages: SseMessage[] = [];
  const violations: Error[] = [];
  const contentType = response.headers.get('content-type') ?? undefined;
  const exchange = {
    method: 'GET',
    url: target.pathname,
    status: response.status,
    contentType,
    headers: Object.fromEntries(response.headers),
  };
  let ended = false;
  if (response.status === 200) {
    await checkHttpAnswer(target.origin, { ...exchange, body: '' });
    const body = response.body;
    if (body) {
      readSseEvents(body, (event) => {
        const data = checkSseEvent(event, violations);
        if (data)
          messages.push({
            ...(event.id !== undefined && { id: event.id }),
            ...(event.event !== undefined && { event: event.event }),
            data,
          });
      }).then(
        () => (ended = true),
        () => undefined, // aborted by the client
      );
    }
  } else {
    await checkHttpAnswer(target.origin, { ...exchange, body: await response.text() });
    ended = true;
  }
  const conforming = () => {
    if (violations[0]) throw violations[0];
  };
  return {
    status: response.status,
    headers: response.headers,
    messages,
    violations,
    ended: () => {
      conforming();
      return ended;
    },
    abort: () => {
      controller.abort();
      conforming();
    },
  };
}

/**
 * A run's own slice of the shared infrastructure: a topic prefix, a Redis key prefix and one
 * database per service, with the environment that points processes at them. `cleanup` deletes
 * every topic (and dead-letter topic), key and database the run used.
 */
export function isolatedRun(tag: string) {
  const run = runId();
  const topicPrefix = `${tag}.${run}.`;
  const redisPrefix = `${tag}:${run}:`;
  const databases = new Set<string>();
  const jwtSecretText = `${tag}-secret-${run}-0123456789`;
  return {
    run,
    jwtSecretText,
    env: {
      JWT_SECRET: jwtSecretText,
      KAFKA_BROKERS: testInfra.kafkaBrokers.join(','),
      KAFKA_TOPIC_PREFIX: topicPrefix,
      KAFKA_TOPIC_PARTITIONS: '3',
      REDIS_URL: testInfra.redisUrl,
      REDIS_KEY_PREFIX: redisPrefix,
      NODE_ENV: 'test',
    },
    /** A database for `service` that only this run uses (created by the service at start). */
    databaseUrl(service: string): string {
      const url = testDatabaseUrl(`${tag}_${run}_${service.replace(/-/g, '_')}`);
      databases.add(url);
      return url;
    },
    /**
     * Removes the run's topics, consumer groups (every group with the run id as one of its
     * dot-separated parts, as tests name them: `web.<run>.gateway`), databases and Redis keys;
     * each even when another could not be removed (a broker that did not answer still lets the
     * databases go). Rejects with an AggregateError of every removal that failed (see `cleanupAll`).
     */
    async cleanup(): Promise<void> {
      const kafka = createKafka({
        brokers: testInfra.kafkaBrokers,
        clientId: `${tag}-cleanup`,
        logger: createLogger(tag, 'silent'),
      });
      const topics = Object.values(Topics).map((t) => topicPrefix + t);
      const redis = new Redis(testInfra.redisUrl);
      await cleanupAll(
        () => deleteTopics(kafka, [...topics, ...topics.map(dlqTopicOf)]),
        () => deleteGroups(kafka, (group) => group.split('.').includes(run)),
        ...[...databases].map((url) => () => dropDatabase(url)),
        () => deleteKeys(redis, `${redisPrefix}*`),
        () => redis.disconnect(),
      );
    },
  };
}

/**
 * Runs a script (a benchmark) on its own `isolatedRun` through `withCleanup` (@ripple/testing), so
 * that it leaves nothing behind: when `body` ends, throws, or the process gets
 * SIGINT/SIGTERM/SIGHUP, whatever `defer` registered runs (last registered, first run), then every
 * service it spawned through `spawn` is stopped (SIGTERM, then SIGKILL after 10 s), then the run's
 * topics, consumer groups, Redis keys and databases are removed. A signal then ends the process with
 * 128 + its number (130/143/129), and more signals meanwhile do not cut the clean-up short; a failure
 * is thrown on after the clean-up.
 */
export async function runScoped<T>(
  tag: string,
  body: (scope: {
    iso: ReturnType<typeof isolatedRun>;
    spawn: (...args: Parameters<typeof spawnService>) => Promise<RunningService>;
    /** Registers a clean-up of something the body started itself (a private broker). */
    defer: CleanupScope['defer'];
  }) => Promise<T>,
): Promise<T> {
  const iso = isolatedRun(tag);
  return withCleanup(`run ${iso.run}`, ({ defer }) => {
    const services: RunningService[] = [];
    defer(() => iso.cleanup());
    defer(() =>
      Promise.all(
        services.map(async (s) => {
          const kill = setTimeout(() => s.process.kill('SIGKILL'), 10_000);
          await s.stop();
          clearTimeout(kill);
        }),
      ),
    );
    return body({
      iso,
      spawn: async (...args) => {
        const service = await spawnService(...args);
        services.push(service);
        return service;
      },
      defer,
    });
  });
}
