import assert from 'node:assert/strict';
import { after, before } from 'node:test';
import { randomUUID } from 'node:crypto';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { DEVELOPMENT_JWT_SECRET, jwtSecret, signAccessToken, signSubscriptionToken } from '@ripple/auth';
import { applyMigrations, dropDatabase, ensureDatabase } from '@ripple/db';
import type { RawSql, Transaction } from '@ripple/db';
import { Topics } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import { createEventProducer, createKafka, deleteGroups, deleteTopics, ensureTopics, readTopics } from '@ripple/kafka';
import type { EventProducer, TopicReader, TopicReaderOptions } from '@ripple/kafka';
import { mutations } from '@ripple/http';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { cleanupAll, deleteKeys, OpenApiContract, runId, testDatabaseUrl, testInfra } from '@ripple/testing';
import { directPublisher, outboxEmitter, outboxMessages } from './events.js';
import { statementBatcher } from './batch.js';
import { transientDbError } from './prisma.js';
import { directStatements } from './statements.js';
import { createRedis } from './runtime.js';
import type { ApiDeps } from './runtime.js';

interface OpenApiDoc {
  components?: { securitySchemes?: Record<string, unknown> };
  paths: Record<
    string,
    Record<
      string,
      {
        tags?: string[];
        security?: unknown;
        parameters?: { name: string; in: string; required?: boolean }[];
        responses: Record<
          string,
          { description: string; content?: Record<string, { schema?: { properties?: Record<string, unknown> } }> }
        >;
      }
    >
  >;
}

const contracts = new WeakMap<FastifyInstance, Promise<OpenApiContract>>();

/**
 * Checks an answer of `app` against the OpenAPI document the app serves at /docs/json (loaded and
 * validated once per app): a status, body or route the document does not promise fails the test.
 */
export async function assertContract(
  app: FastifyInstance,
  request: { method: string; url: string },
  res: LightMyRequestResponse,
): Promise<void> {
  let contract = contracts.get(app);
  if (!contract) {
    contract = app.inject({ method: 'GET', url: '/docs/json' }).then((doc) => OpenApiContract.load(doc.json()));
    contracts.set(app, contract);
  }
  const contentType = res.headers['content-type'];
  (await contract).check({
    method: request.method,
    url: request.url,
    status: res.statusCode,
    contentType: typeof contentType === 'string' ? contentType : undefined,
    body: res.body,
    headers: res.headers,
  });
}

/** What a testbed's set-up has made so far: undone when a later step fails. */
interface MadeSoFar<Db> {
  db?: Db;
  redis?: ReturnType<typeof createRedis>;
}

/**
 * Runs the steps of a testbed's set-up that follow creating its database (`url`). When one
 * throws, disconnects what `made` records and drops the database (every step, see `cleanupAll`),
 * then rethrows the set-up's error: a test whose `before` failed leaves nothing behind, since it
 * never gets a testbed to close.
 */
async function setUpOrDrop<Db extends { $disconnect(): Promise<void> }, T>(
  url: string,
  setUp: (made: MadeSoFar<Db>) => Promise<T>,
): Promise<T> {
  const made: MadeSoFar<Db> = {};
  try {
    return await setUp(made);
  } catch (err) {
    const { db, redis } = made;
    // The set-up's error is the one to report; a clean-up failure on top of it would hide it.
    await cleanupAll(db && (() => db.$disconnect()), redis && (() => redis.disconnect()), () =>
      dropDatabase(url),
    ).catch(() => undefined);
    throw err;
  }
}

/**
 * A domain service's dependencies on the real test PostgreSQL (a fresh database, migrated) and
 * Redis (a fresh key prefix), for HTTP tests with `app.inject`. `close` drops both.
 */
export async function apiTestbed<Db extends RawSql & { $disconnect(): Promise<void> }, Tx extends RawSql>(spec: {
  name: string;
  migrationsDir: string;
  createDb: (url: string) => Db;
  transaction: (db: Db) => Transaction<Tx>;
  rateLimit?: { max: number; windowMs: number };
}) {
  const id = runId();
  const url = testDatabaseUrl(`${spec.name.replace(/-/g, '_')}_test_${id}`);
  await ensureDatabase(url);
  const { db, redis } = await setUpOrDrop<Db, { db: Db; redis: ReturnType<typeof createRedis> }>(url, async (made) => {
    await applyMigrations(url, spec.migrationsDir);
    made.db = spec.createDb(url);
    made.redis = createRedis(testInfra.redisUrl);
    await made.redis.connect();
    return { db: made.db, redis: made.redis };
  });
  const redisKeyPrefix = `test:${id}:`;
  const secret = DEVELOPMENT_JWT_SECRET;
  const logger = createLogger(spec.name, 'silent');
  const transaction = spec.transaction(db);
  // Direct publishes go to a real broker under this run's topic prefix; connected on first use.
  const topicPrefix = `test.${id}.`;
  const kafka = createKafka({ brokers: testInfra.kafkaBrokers, clientId: `${spec.name}-test`, logger });
  let producer: Promise<EventProducer> | undefined;
  const connectProducer = async () => {
    await ensureTopics(
      kafka,
      Object.values(Topics).map((t) => ({ topic: topicPrefix + t, numPartitions: 1, replicationFactor: 1 })),
    );
    const p = createEventProducer(kafka);
    await p.connect();
    return p;
  };
  const metrics = createMetricsRegistry(spec.name);
  const direct = directStatements(url);
  const statements = direct.sql;
  const deps: ApiDeps<Db, Tx> = {
    name: spec.name,
    description: `${spec.name} under test`,
    logger,
    metrics,
    checks: {},
    jwt: { verification: { algorithm: 'HS256', secret } },
    redis,
    redisKeyPrefix,
    rateLimit: spec.rateLimit ?? { max: 10_000, windowMs: 60_000 },
    classifyError: transientDbError,
    db,
    transaction,
    // No relay under test: tests read the outbox table itself (`events`).
    wakeOutbox: () => undefined,
    mutations: mutations({ transaction, sql: statements, afterCommit: () => undefined }),
    batch: statementBatcher(statements, metrics),
    emit: outboxEmitter(spec.name),
    outboxMessage: outboxMessages(spec.name),
    publish: async (type, data, trace) =>
      directPublisher(spec.name, await (producer ??= connectProducer()), topicPrefix)(type, data, trace),
    now: () => new Date(),
  };
  /** Consumer groups of the readers made through `bed.readTopics`. */
  const readerGroups = new Set<string>();
  const bed = {
    deps,
    /** A valid access token for `user`. */
    token: (user: string, opts: { ttlSeconds?: number } = {}) =>
      signAccessToken(jwtSecret(secret), user, { ttlSeconds: opts.ttlSeconds ?? 600 }),
    /**
     * `Authorization` header for `user`, with a fresh Idempotency-Key unless one is given; `null`:
     * none (the path most clients take, where hot writes are batched).
     */
    auth: async (user: string, idempotencyKey: string | null = randomUUID()) => ({
      authorization: `Bearer ${await signAccessToken(jwtSecret(secret), user)}`,
      ...(idempotencyKey !== null && { 'idempotency-key': idempotencyKey }),
    }),
    /**
     * `app.inject` as `user` (no token when undefined), with a fresh or given Idempotency-Key
     * (`null`: none); the answer is checked against the app's OpenAPI document (`assertContract`).
     */
    async call(
      app: FastifyInstance,
      method: string,
      url: string,
      user: string | undefined,
      payload?: object,
      key?: string | null,
    ) {
      const headers = user === undefined ? {} : await bed.auth(user, key);
      const res = await app.inject({ method: method as 'GET', url, headers, ...(payload && { payload }) });
      await assertContract(app, { method, url }, res);
      return {
        status: res.statusCode,
        // The caller names the body's shape, as with inject's own res.json<T>().
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
        json: <T = Record<string, unknown>>(): T => res.json<T>(),
        headers: res.headers,
      };
    },
    /**
     * Checks that every route answers 401 with the right code to a missing, malformed, forged,
     * expired or non-access token, or one whose subject is not a user id.
     */
    async assertTokensRequired(app: FastifyInstance, routes: readonly (readonly [string, string])[]) {
      const own = jwtSecret(secret);
      const cases: [string | undefined, string][] = [
        [undefined, 'AUTH_TOKEN_MISSING'],
        ['Basic abc', 'AUTH_TOKEN_MISSING'],
        [`Bearer ${await signAccessToken(jwtSecret('someone-elses-secret-entirely'), 'alice')}`, 'AUTH_TOKEN_INVALID'],
        [`Bearer ${await signAccessToken(own, 'alice', { ttlSeconds: -10 })}`, 'AUTH_TOKEN_EXPIRED'],
        [`Bearer ${await signSubscriptionToken(own, 'alice', 'chat:r1')}`, 'AUTH_TOKEN_INVALID'],
        [`Bearer ${await signAccessToken(own, 'not a user id')}`, 'AUTH_TOKEN_INVALID'],
        ['Bearer not.a.jwt', 'AUTH_TOKEN_INVALID'],
      ];
      for (const [method, url] of routes) {
        for (const [authorization, code] of cases) {
          const res = await app.inject({
            method: method as 'GET',
            url,
            headers: authorization === undefined ? {} : { authorization },
            ...((method === 'POST' || method === 'PATCH') && { payload: {} }),
          });
          await assertContract(app, { method, url }, res);
          assert.deepEqual(
            [res.statusCode, res.json<{ code: string }>().code],
            [401, code],
            `${method} ${url} with ${authorization ?? 'no token'}`,
          );
        }
      }
    },
    /**
     * Checks the conventions of the app's OpenAPI document: a valid document; no method served
     * on a documented path that the document does not list (HEAD, OPTIONS); every operation
     * but the operational ones (/healthz, /readyz, /metrics) needs the bearer scheme and lists its 401/429/500/503 errors with the shared error body;
     * no response without a description of its own; no required `limit`; every POST, PATCH
     * and DELETE reads `Idempotency-Key` but those in `unkeyed` (they store nothing); every
     * DELETE answers 204 without a body but those in `deletesWithBody` (`DELETE /x/{id}` names).
     */
    async assertOpenApiConventions(
      app: FastifyInstance,
      opts: { unkeyed?: readonly string[]; deletesWithBody?: readonly string[] } = {},
    ) {
      const doc = (await app.inject({ method: 'GET', url: '/docs/json' })).json<OpenApiDoc>();
      const contract = await OpenApiContract.load(doc);
      // What is served is what is documented: any other method on a documented path is a 404.
      for (const probe of contract.undocumentedMethods()) {
        const res = await app.inject({ method: probe.method as 'GET', url: probe.url });
        await assertContract(app, probe, res);
        assert.equal(res.statusCode, 404, `${probe.method} ${probe.url} is served but not documented`);
      }
      assert.deepEqual(Object.keys(doc.components?.securitySchemes ?? {}), ['bearerAuth']);
      for (const [path, item] of Object.entries(doc.paths)) {
        for (const [method, op] of Object.entries(item)) {
          const name = `${method.toUpperCase()} ${path}`;
          // /healthz, /readyz, /metrics: no token, never limited or shed (OperationalSchemas).
          if (op.tags?.includes('operations') === true) continue;
          assert.deepEqual(op.security, [{ bearerAuth: [] }], name);
          for (const status of ['401', '429', '500', '503']) {
            const schema = op.responses[status]?.content?.['application/json']?.schema;
            // A 503 may be OVERLOADED, which names why the request was shed.
            const properties = ['code', 'message', 'field', ...(status === '503' ? ['reason'] : [])];
            assert.deepEqual(Object.keys(schema?.properties ?? {}), properties, `${name} ${status}`);
          }
          for (const [status, response] of Object.entries(op.responses)) {
            assert.notEqual(response.description, 'Default Response', `${name} ${status}`);
          }
          const params = op.parameters ?? [];
          assert.equal(params.find((p) => p.name === 'limit')?.required ?? false, false, `${name}: limit`);
          const mutating = ['post', 'put', 'patch', 'delete'].includes(method) && !(opts.unkeyed ?? []).includes(name);
          const takesKey = params.some((p) => p.in === 'header' && p.name === 'idempotency-key');
          assert.equal(takesKey, mutating, `${name}: Idempotency-Key`);
          if (method === 'delete' && !(opts.deletesWithBody ?? []).includes(name)) {
            const success = Object.keys(op.responses).filter((s) => s.startsWith('2'));
            assert.deepEqual(success, ['204'], name);
            assert.equal(op.responses['204']?.content, undefined, `${name}: 204 has no body`);
          }
        }
      }
    },
    /** Items written so far by the batched write `statement` (the sum of `db_write_batch_size`). */
    batchedItems: async (statement: string): Promise<number> => {
      const metric = await metrics.getSingleMetric('db_write_batch_size')?.get();
      const values = (metric?.values ?? []) as { metricName?: string; labels: { statement?: string }; value: number }[];
      return (
        values.find((v) => v.metricName === 'db_write_batch_size_sum' && v.labels.statement === statement)?.value ?? 0
      );
    },
    /** Every event written to the outbox so far, in order. */
    events: async (): Promise<AnyEvent[]> => {
      const rows = await db.$queryRaw<{ value: string }[]>`SELECT value FROM outbox ORDER BY id`;
      return rows.map((r) => JSON.parse(r.value) as AnyEvent);
    },
    kafka,
    topicPrefix,
    /** A raw reader of topics on the test broker (see `readTopics` in @ripple/kafka); `close` deletes its group. */
    readTopics: (opts: TopicReaderOptions): Promise<TopicReader> => {
      readerGroups.add(opts.groupId);
      return readTopics(kafka, opts);
    },
    /** Creates this run's topics and connects the producer (done on first direct publish too). */
    connectKafka: async () => {
      await (producer ??= connectProducer());
    },
    /**
     * Disconnects, then deletes the run's topics (when Kafka was used), its readers' consumer
     * groups (stop the readers first), Redis keys and database;
     * every step even when an earlier one failed. Rejects with an AggregateError of the failed
     * steps (see `cleanupAll`).
     */
    close: () =>
      cleanupAll(
        () => direct.end(),
        () => db.$disconnect(),
        () => producer?.then((p) => p.disconnect()),
        producer &&
          (() =>
            deleteTopics(
              kafka,
              Object.values(Topics).map((t) => topicPrefix + t),
            )),
        readerGroups.size > 0 && (() => deleteGroups(kafka, (group) => readerGroups.has(group))),
        () => deleteKeys(redis, `${redisKeyPrefix}*`),
        () => redis.disconnect(),
        () => dropDatabase(url),
      ),
  };
  return bed;
}

/**
 * For a test file: registers `before`/`after` hooks that start a testbed (`startBed`, e.g. an
 * `apiTestbed`) and the service's app on it (`buildApp`), and release both (app first). Read
 * `bed` and `app` inside tests, once `before` ran.
 */
export function testApp<Bed extends { deps: Deps; close(): Promise<void> }, Deps>(
  startBed: () => Promise<Bed>,
  buildApp: (deps: Deps) => Promise<FastifyInstance>,
): { bed: Bed; app: FastifyInstance } {
  const state = {} as { bed: Bed; app: FastifyInstance };
  before(async () => {
    state.bed = await startBed();
    state.app = await buildApp(state.bed.deps);
  });
  after(() =>
    cleanupAll(
      () => state.app?.close(),
      () => state.bed?.close(),
    ),
  );
  return state;
}
