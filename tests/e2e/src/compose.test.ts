import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

// docker-compose.yml must run what the README lists, on the ports and variables of DESIGN.md §9.
const root = fileURLToPath(new URL('../../../', import.meta.url));
interface ComposeService {
  image?: string;
  build?: { args?: Record<string, string> };
  ports?: string[];
  environment?: Record<string, string | number>;
}
const compose = parse(readFileSync(`${root}docker-compose.yml`, 'utf8'), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const readme = readFileSync(`${root}README.md`, 'utf8');

/** `| \`name\` | port | ...` rows of the README's component table. */
function readmeComponents(): { name: string; port: string }[] {
  return [...readme.matchAll(/^\| `([a-z-]+)` +\| (\d+) +\|/gm)].map((m) => ({ name: m[1] ?? '', port: m[2] ?? '' }));
}

const DESIGN_PORTS: Record<string, number> = {
  'fanout-gateway': 8080,
  'post-service': 3001,
  'chat-service': 3002,
  'notification-service': 3003,
};

test('docker-compose should run every component the README lists, on the README port', () => {
  const components = readmeComponents();
  assert.ok(components.length >= 7, 'the README lists its components');
  for (const { name, port } of components) {
    const service = compose.services[name];
    assert.ok(service, `${name} is in docker-compose.yml`);
    assert.ok(service.ports?.includes(`${port}:${port}`), `${name} publishes ${port}`);
  }
});

test('docker-compose should wire the services with the DESIGN.md defaults', () => {
  for (const [name, port] of Object.entries(DESIGN_PORTS)) {
    const service = compose.services[name];
    assert.ok(service, name);
    assert.equal(service.build?.args?.SERVICE, name);
    const env = service.environment ?? {};
    assert.equal(String(env.PORT), String(port), `${name} PORT`);
    assert.equal(env.KAFKA_BROKERS, 'kafka:9092', `${name} KAFKA_BROKERS`);
    assert.equal(env.REDIS_URL, 'redis://redis:6379', `${name} REDIS_URL`);
    assert.match(String(env.JWT_SECRET), /JWT_SECRET/, `${name} takes JWT_SECRET from the environment`);
    assert.equal(env.OTEL_SERVICE_NAME, name);
    assert.ok(env.OTEL_EXPORTER_OTLP_ENDPOINT, `${name} exports traces`);
    if (name !== 'fanout-gateway') {
      assert.equal(env.DATABASE_URL, `postgresql://postgres@postgres:5432/${name.replace(/-/g, '_')}`);
    }
  }
});

test('docker-compose should run Kafka in KRaft mode from the official image, plus a collector and Jaeger', () => {
  const kafka = compose.services.kafka;
  assert.match(kafka?.image ?? '', /^apache\/kafka:4\./);
  assert.equal(kafka?.environment?.KAFKA_PROCESS_ROLES, 'broker,controller');
  assert.match(compose.services.redis?.image ?? '', /^redis:7/);
  assert.match(compose.services.postgres?.image ?? '', /^postgres:/);
  assert.ok(compose.services['otel-collector']);
  assert.ok(compose.services.jaeger);
});

test('docker-compose should wire Prometheus to every process and Grafana to Prometheus with the dashboard', () => {
  const prometheus = compose.services.prometheus as ComposeService & { volumes?: string[] };
  const grafana = compose.services.grafana as ComposeService & { volumes?: string[] };
  assert.ok(prometheus.ports?.includes('9090:9090'));
  assert.ok(grafana.ports?.includes('3000:3000'));
  for (const volume of [...(prometheus.volumes ?? []), ...(grafana.volumes ?? [])]) {
    const local = volume.split(':')[0] ?? '';
    assert.ok(existsSync(`${root}${local.replace(/^\.\//, '')}`), `${local} exists`);
  }
  const scrape = parse(readFileSync(`${root}infra/prometheus/prometheus.yml`, 'utf8')) as {
    scrape_configs: { static_configs: { targets: string[] }[] }[];
  };
  const targets = scrape.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
  for (const [name, port] of Object.entries(DESIGN_PORTS)) assert.ok(targets.includes(`${name}:${port}`), name);
  const datasource = parse(readFileSync(`${root}infra/grafana/provisioning/datasources/prometheus.yaml`, 'utf8')) as {
    datasources: { uid: string; url: string }[];
  };
  assert.equal(datasource.datasources[0]?.url, 'http://prometheus:9090');
  const dashboard = JSON.parse(readFileSync(`${root}infra/grafana/dashboards/ripple.json`, 'utf8')) as {
    panels: { title: string; targets: { datasource: { uid: string } }[] }[];
  };
  for (const panel of dashboard.panels) {
    for (const t of panel.targets) assert.equal(t.datasource.uid, datasource.datasources[0]?.uid, panel.title);
  }
});
