// Global test setup, then node:test over every compiled *.test.js.
// Infrastructure, in this order:
//   1. KAFKA_BROKERS, REDIS_URL and DATABASE_URL all set: use them as they are;
//   2. otherwise the repo's own scripts (infra/up.sh: Kafka from Maven jars, local Redis/PostgreSQL);
//   3. otherwise testcontainers, when a container runtime answers;
//   4. otherwise fail with one message naming what is missing.
import { spawnSync, spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const say = (msg) => process.stdout.write(`[test] ${msg}\n`);

function findTests(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) findTests(path, out);
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

async function withContainers() {
  const { GenericContainer, Wait } = await import('testcontainers');
  say('starting Kafka, Redis and PostgreSQL containers (testcontainers)');
  const kafka = await new GenericContainer('apache/kafka:4.1.1')
    .withExposedPorts({ container: 9092, host: 9092 })
    .withEnvironment({
      KAFKA_NODE_ID: '1',
      KAFKA_PROCESS_ROLES: 'broker,controller',
      KAFKA_LISTENERS: 'PLAINTEXT://:9092,CONTROLLER://:9093',
      KAFKA_ADVERTISED_LISTENERS: 'PLAINTEXT://127.0.0.1:9092',
      KAFKA_CONTROLLER_LISTENER_NAMES: 'CONTROLLER',
      KAFKA_CONTROLLER_QUORUM_VOTERS: '1@localhost:9093',
      KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR: '1',
      KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS: '3',
      KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
      KAFKA_AUTO_CREATE_TOPICS_ENABLE: 'false',
    })
    .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
    .start();
  const redis = await new GenericContainer('redis:7').withExposedPorts(6379).start();
  const postgres = await new GenericContainer('postgres:16')
    .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' })
    .withExposedPorts(5432)
    .withWaitStrategy(Wait.forLogMessage(/ready to accept connections/, 2))
    .start();
  return {
    env: {
      KAFKA_BROKERS: `127.0.0.1:${kafka.getMappedPort(9092)}`,
      REDIS_URL: `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`,
      DATABASE_URL: `postgresql://postgres@${postgres.getHost()}:${postgres.getMappedPort(5432)}/postgres`,
    },
    stop: () => Promise.all([kafka.stop(), redis.stop(), postgres.stop()]),
  };
}

function dockerAnswers() {
  return spawnSync('docker', ['info'], { stdio: 'ignore' }).status === 0;
}

async function setUp() {
  const { KAFKA_BROKERS, REDIS_URL, DATABASE_URL } = process.env;
  if (KAFKA_BROKERS && REDIS_URL && DATABASE_URL) {
    say('using KAFKA_BROKERS, REDIS_URL and DATABASE_URL from the environment');
    return { env: {}, stop: async () => {} };
  }
  const kafkaWasUp = spawnSync('bash', ['infra/kafka/kafka.sh', 'status'], { cwd: root }).status === 0;
  const up = spawnSync('bash', ['infra/up.sh', '--no-migrate'], { cwd: root, stdio: ['ignore', 'inherit', 'pipe'] });
  if (up.status === 0) {
    const keep = process.env.KEEP_INFRA === '1' || kafkaWasUp;
    return {
      // What the user set wins; the rest points at what infra/up.sh started (KAFKA_PORT included).
      env: {
        KAFKA_BROKERS: KAFKA_BROKERS ?? `127.0.0.1:${process.env.KAFKA_PORT ?? 9092}`,
        REDIS_URL: REDIS_URL ?? 'redis://127.0.0.1:6379',
        DATABASE_URL: DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
      },
      stop: async () => {
        if (!keep) spawnSync('bash', ['infra/kafka/kafka.sh', 'stop'], { cwd: root, stdio: 'inherit' });
      },
    };
  }
  const why = up.stderr.toString().trim();
  if (dockerAnswers()) {
    say(`local infrastructure unavailable (${why}); trying containers`);
    return withContainers();
  }
  process.stderr.write(
    `[test] cannot run the tests: no infrastructure.\n${why}\n` +
      '[test] Fix that, or run Docker, or set KAFKA_BROKERS, REDIS_URL and DATABASE_URL to running services.\n',
  );
  process.exit(1);
}

const infra = await setUp();
const files = [
  ...findTests(join(root, 'libs')),
  ...findTests(join(root, 'services')),
  ...findTests(join(root, 'tests')),
]
  .filter((f) => f.includes('/dist/'))
  .sort();
say(`running ${files.length} test files`);
const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...process.argv.slice(2), ...files], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, ...infra.env, NODE_ENV: 'test' },
});
const code = await new Promise((resolve) => child.on('exit', (c, signal) => resolve(c ?? (signal ? 1 : 0))));
await infra.stop();
process.exit(code);
