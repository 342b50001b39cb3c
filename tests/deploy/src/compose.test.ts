import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { parse } from 'yaml';
import { PROCESSES, envProblems } from './env-schema.js';
import { DEPLOYABLES, ROOT, readRepoFile } from './manifests.js';
import { dockerfileStages } from './dockerfile.js';

// docker-compose.yml resolved against the code: every image build names a Dockerfile target and
// a service package, every port is the one the process listens on, every variable is one the
// process reads and loads (issue 17, findings 1, 6 and 7).
interface ComposeService {
  image?: string;
  build?: { context?: string; target?: string; args?: Record<string, string> };
  ports?: string[];
  environment?: Record<string, string | number>;
  volumes?: string[];
}
const compose = parse(readRepoFile('docker-compose.yml'), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const readme = readRepoFile('README.md');
/** The value `docker compose` gives `${JWT_SECRET:?...}` once the user exported a secret. */
const USER_SECRET = 'a-user-secret-of-32-characters!!';

/** Environment values as the container sees them, `${VAR:?message}` substituted. */
function resolvedEnv(service: ComposeService): Record<string, string> {
  return Object.fromEntries(
    Object.entries(service.environment ?? {}).map(([k, v]) => [
      k,
      String(v).replace(/^\$\{JWT_SECRET:\?[^}]*\}$/, USER_SECRET),
    ]),
  );
}

/** `| \`name\` | port | ...` rows of the README's component table. */
function readmeComponents(): { name: string; port: string }[] {
  return [...readme.matchAll(/^\| `([a-z-]+)` +\| (\d+) +\|/gm)].map((m) => ({ name: m[1] ?? '', port: m[2] ?? '' }));
}

test('docker-compose should run every component the README lists, on the README port', () => {
  const components = readmeComponents();
  assert.ok(components.length >= 7, 'the README lists its components');
  for (const { name, port } of components) {
    const service = compose.services[name];
    assert.ok(service, `${name} is in docker-compose.yml`);
    assert.ok(service.ports?.includes(`127.0.0.1:${port}:${port}`), `${name} publishes ${port}`);
  }
});

test('docker-compose should publish every port on 127.0.0.1 only (PostgreSQL trusts all, Redis and Kafka have no auth)', () => {
  const published = Object.entries(compose.services).flatMap(([name, service]) =>
    (service.ports ?? []).map((port) => ({ name, port })),
  );
  assert.ok(published.length > 0);
  for (const { name, port } of published) assert.match(port, /^127\.0\.0\.1:\d+:\d+$/, `${name} publishes ${port}`);
});

test('docker-compose should build each deployable from a Dockerfile target, on its port', () => {
  const stages = dockerfileStages();
  for (const [name, port] of Object.entries(DEPLOYABLES)) {
    const service = compose.services[name];
    assert.ok(service?.build, `${name} is built`);
    assert.equal(service.build.context, '.', `${name} builds from the repository`);
    assert.ok(
      stages.includes(service.build.target ?? ''),
      `${name} target ${service.build.target} is a Dockerfile stage`,
    );
    assert.equal(service.build.args?.SERVICE, name);
    assert.ok(existsSync(`${ROOT}services/${name}/src/main.ts`), `services/${name} is a deployable`);
    const env = resolvedEnv(service);
    assert.equal(env.PORT, String(port), `${name} listens on ${port}`);
    assert.ok(service.ports?.includes(`127.0.0.1:${port}:${port}`), `${name} publishes ${port}`);
    assert.equal(env.OTEL_SERVICE_NAME, name);
    assert.match(env.OTEL_EXPORTER_OTLP_ENDPOINT ?? '', /^http:\/\/otel-collector:4318$/, `${name} exports traces`);
    assert.equal(env.REDIS_URL, 'redis://redis:6379', `${name} REDIS_URL`);
    if (name !== 'fanout-gateway') {
      assert.equal(env.DATABASE_URL, `postgresql://postgres@postgres:5432/${name.replace(/-/g, '_')}`);
    }
  }
});

test('docker-compose should give every process it builds only variables that process reads, with values it loads', () => {
  const built = Object.entries(compose.services).filter(([, service]) => service.build !== undefined);
  assert.deepEqual(built.map(([name]) => name).sort(), Object.keys(PROCESSES).sort(), 'compose builds every process');
  for (const [name, service] of built)
    assert.deepEqual(envProblems(name, resolvedEnv(service)), [], `${name} environment`);
});

test('docker-compose Kafka should advertise the compose name to containers and 127.0.0.1 to the host', () => {
  const kafka = compose.services.kafka;
  assert.match(kafka?.image ?? '', /^apache\/kafka:4\./);
  const env = kafka?.environment ?? {};
  assert.equal(env.KAFKA_PROCESS_ROLES, 'broker,controller');
  const advertised = new Map(
    String(env.KAFKA_ADVERTISED_LISTENERS)
      .split(',')
      .map((l) => {
        const m = /^([A-Z_]+):\/\/(.+)$/.exec(l);
        return [m?.[1] ?? '', m?.[2] ?? ''] as const;
      }),
  );
  const published = (kafka?.ports ?? []).map((p) => p.split(':').slice(-2));
  // The host's clients (tests, `pnpm start`) bootstrap to 127.0.0.1:<published port> and must be
  // sent back to an address on the host.
  const hostListeners = [...advertised.values()].filter((a) => a.startsWith('127.0.0.1:'));
  assert.equal(hostListeners.length, 1, 'one listener for the host');
  const hostPort = hostListeners[0]?.split(':')[1];
  assert.ok(
    published.some(([h, c]) => h === hostPort && c === hostPort),
    `the host listener's port ${hostPort} is published as itself`,
  );
  // The containers bootstrap to the compose name and must be sent back to it.
  for (const name of Object.keys(DEPLOYABLES)) {
    const brokers = String(compose.services[name]?.environment?.KAFKA_BROKERS);
    assert.ok([...advertised.values()].includes(brokers), `${name} KAFKA_BROKERS=${brokers} is advertised`);
    assert.match(brokers, /^kafka:\d+$/);
    assert.notEqual(brokers.split(':')[1], hostPort, `${name} does not use the host listener`);
  }
  const protocols = String(env.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP);
  for (const listener of advertised.keys()) assert.match(protocols, new RegExp(`\\b${listener}:`), listener);
  assert.ok(advertised.has(String(env.KAFKA_INTER_BROKER_LISTENER_NAME)), 'brokers talk on an advertised listener');
});

test('docker-compose should need a JWT_SECRET of 16+ characters and say how to mint a token the stack accepts', () => {
  const text = readRepoFile('docker-compose.yml');
  assert.match(text, /JWT_SECRET: \$\{JWT_SECRET:\?[^}]*16\+ characters[^}]*\}/);
  // The token CLI in every image, with the stack's own JWT_SECRET (README "Run it with Docker").
  const mint =
    'docker compose run --rm -e NODE_ENV=development post-service node node_modules/@ripple/auth/dist/cli.js';
  assert.ok(readme.includes(mint), 'the README gives the mint command');
  assert.ok(existsSync(`${ROOT}libs/auth/src/cli.ts`));
  const postService = JSON.parse(readRepoFile('services/post-service/package.json')) as {
    dependencies: Record<string, string>;
  };
  assert.ok(postService.dependencies['@ripple/auth'], 'the post-service image carries @ripple/auth');
  assert.deepEqual(
    envProblems('post-service', { JWT_SECRET: 'fifteen-chars!!' }).length,
    1,
    '15 characters are refused',
  );
});

test('docker-compose should wire Prometheus to every process and Grafana to Prometheus with the dashboard', () => {
  const prometheus = compose.services.prometheus;
  const grafana = compose.services.grafana;
  assert.ok(prometheus?.ports?.includes('127.0.0.1:9090:9090'));
  assert.ok(grafana?.ports?.includes('127.0.0.1:3000:3000'));
  for (const volume of [...(prometheus?.volumes ?? []), ...(grafana?.volumes ?? [])]) {
    const local = volume.split(':')[0] ?? '';
    assert.ok(existsSync(`${ROOT}${local.replace(/^\.\//, '')}`), `${local} exists`);
  }
  const scrape = parse(readRepoFile('infra/prometheus/prometheus.yml')) as {
    scrape_configs: { static_configs: { targets: string[] }[] }[];
  };
  const targets = scrape.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
  for (const [name, port] of Object.entries(DEPLOYABLES)) assert.ok(targets.includes(`${name}:${port}`), name);
  const datasource = parse(readRepoFile('infra/grafana/provisioning/datasources/prometheus.yaml')) as {
    datasources: { uid: string; url: string }[];
  };
  assert.equal(datasource.datasources[0]?.url, 'http://prometheus:9090');
  const dashboard = JSON.parse(readRepoFile('infra/grafana/dashboards/ripple.json')) as {
    panels: { title: string; targets: { datasource: { uid: string } }[] }[];
  };
  for (const panel of dashboard.panels) {
    for (const t of panel.targets) assert.equal(t.datasource.uid, datasource.datasources[0]?.uid, panel.title);
  }
  assert.ok(compose.services['otel-collector']);
  assert.ok(compose.services.jaeger);
});
