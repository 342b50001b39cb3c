import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GatewayEnv } from '@ripple/fanout-gateway/config';
import { envProblems } from './env-schema.js';
import { schemaProblem } from './k8s-schemas.js';
import { DEPLOYABLES, OVERLAYS, readRepoFile, renderOverlay } from './manifests.js';
import type { K8sObject } from './manifests.js';

// k8s/ rendered per overlay by kustomize, each object validated against its schema, and the
// operational rules of issue 17 checked on what would be applied.
interface Probe {
  httpGet?: { path: string };
  tcpSocket?: object;
  periodSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  name: string;
  image: string;
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  envFrom?: { configMapRef?: { name: string } }[];
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command: string[] } } };
  resources?: { requests?: { cpu?: string; memory?: string }; limits?: { cpu?: string; memory?: string } };
}
interface PodSpec {
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsNonRoot?: boolean };
  topologySpreadConstraints?: { topologyKey: string }[];
  containers: Container[];
}
type Deployment = K8sObject & {
  spec: { replicas?: number; selector: { matchLabels: Record<string, string> }; template: { spec: PodSpec } };
};

const rendered = Object.fromEntries(OVERLAYS.map((o) => [o, renderOverlay(o)])) as Record<string, K8sObject[]>;
const ofKind = <T extends K8sObject>(objects: K8sObject[], kind: string) =>
  objects.filter((o) => o.kind === kind) as T[];
const ours = (objects: K8sObject[]) =>
  ofKind<Deployment>(objects, 'Deployment').filter(
    (d) => d.metadata.labels?.['app.kubernetes.io/part-of'] === 'ripple',
  );

/** Go's base64 decoder (the API server's) skips the newlines kustomize wraps long Secret values with. */
function unwrapSecretData(object: K8sObject): K8sObject {
  if (object.kind !== 'Secret' || typeof object.data !== 'object' || object.data === null) return object;
  const data = Object.entries(object.data as Record<string, string>).map(([k, v]) => [k, v.replace(/\s/g, '')]);
  return { ...object, data: Object.fromEntries(data) };
}

/** Strimzi publishes its CRD schemas in neither registry reachable here: these fields are checked by hand. */
function strimziProblem(object: K8sObject): string | undefined {
  const spec = object.spec as Record<string, unknown> | undefined;
  if (object.metadata.labels?.['strimzi.io/cluster'] === undefined && object.kind !== 'Kafka')
    return 'no strimzi.io/cluster';
  if (object.kind === 'KafkaTopic') {
    const allowed = ['topicName', 'partitions', 'replicas', 'config'];
    const extra = Object.keys(spec ?? {}).filter((k) => !allowed.includes(k));
    if (extra.length > 0) return `unknown KafkaTopic fields ${extra.join(', ')}`;
    if (!Number.isInteger(spec?.partitions) || !Number.isInteger(spec?.replicas))
      return 'partitions and replicas are integers';
  }
  if (object.kind === 'KafkaNodePool' && !Number.isInteger(spec?.replicas)) return 'replicas is an integer';
  return undefined;
}

for (const overlay of OVERLAYS) {
  const objects = rendered[overlay] ?? [];

  test(`k8s ${overlay}: every rendered object should validate against its Kubernetes or CRD schema`, () => {
    const problems = objects.flatMap((o) => {
      const problem = o.apiVersion.startsWith('kafka.strimzi.io/')
        ? strimziProblem(o)
        : schemaProblem(unwrapSecretData(o));
      return problem === undefined ? [] : [`${o.kind} ${o.metadata.name}: ${problem}`];
    });
    assert.deepEqual(problems, []);
    for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget', 'HorizontalPodAutoscaler', 'NetworkPolicy']) {
      assert.ok(ofKind(objects, kind).length > 0, kind);
    }
    for (const kind of ['ServiceMonitor', 'PrometheusRule', 'Kafka', 'KafkaNodePool', 'KafkaTopic']) {
      assert.ok(ofKind(objects, kind).length > 0, kind);
    }
  });

  test(`k8s ${overlay}: each deployable should run a pinned image with probes, resources, spread and a disruption budget`, () => {
    const deployments = ours(objects);
    assert.deepEqual(
      deployments
        .map((d) => d.metadata.name)
        .filter((n) => n in DEPLOYABLES)
        .sort(),
      Object.keys(DEPLOYABLES).sort(),
    );
    const budgets = ofKind<K8sObject & { spec: { selector: { matchLabels: Record<string, string> } } }>(
      objects,
      'PodDisruptionBudget',
    );
    for (const d of deployments) {
      const pod = d.spec.template.spec;
      const name = d.metadata.name;
      assert.ok(pod.securityContext?.runAsNonRoot, `${name} runs as non-root`);
      const keys = (pod.topologySpreadConstraints ?? []).map((t) => t.topologyKey);
      assert.ok(keys.includes('kubernetes.io/hostname'), `${name} spreads over nodes`);
      const selector = JSON.stringify(d.spec.selector.matchLabels);
      assert.ok(
        budgets.some((b) => JSON.stringify(b.spec.selector.matchLabels) === selector),
        `${name} has a PodDisruptionBudget`,
      );
      for (const c of pod.containers) {
        assert.match(c.image, /:[\w.-]+$/, `${name} image has a tag`);
        assert.doesNotMatch(c.image, /:latest$/, `${name} image is not :latest`);
        assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, `${name} requests`);
        assert.ok(c.resources?.limits?.memory, `${name} memory limit`);
        assert.ok(
          c.startupProbe && c.readinessProbe && c.livenessProbe,
          `${name} has startup, readiness and liveness probes`,
        );
        // Liveness starts only after the startup probe passed; a first boot gets its whole budget.
        const budgetS = (c.startupProbe.periodSeconds ?? 10) * (c.startupProbe.failureThreshold ?? 3);
        assert.ok(budgetS >= 120, `${name} startup budget ${budgetS} s`);
      }
    }
  });

  test(`k8s ${overlay}: a Deployment an HPA scales should leave its replica count to the HPA`, () => {
    const hpas = ofKind<K8sObject & { spec: { scaleTargetRef: { kind: string; name: string } } }>(
      objects,
      'HorizontalPodAutoscaler',
    );
    for (const hpa of hpas) {
      const target = ofKind<Deployment>(objects, 'Deployment').find(
        (d) => d.metadata.name === hpa.spec.scaleTargetRef.name,
      );
      assert.ok(target, `${hpa.metadata.name} targets a Deployment`);
      assert.equal(target.spec.replicas, undefined, `${target.metadata.name} sets no replicas`);
    }
    assert.ok(hpas.some((h) => h.spec.scaleTargetRef.name === 'fanout-gateway'));
  });

  test(`k8s ${overlay}: the gateway's grace period should cover preStop, the drain window and a margin`, () => {
    const gateway = ours(objects).find((d) => d.metadata.name === 'fanout-gateway');
    assert.ok(gateway);
    const pod = gateway.spec.template.spec;
    const container = pod.containers[0];
    const preStop = container?.lifecycle?.preStop?.exec?.command ?? [];
    assert.equal(preStop[0], 'sleep', 'preStop waits for endpoints to be removed');
    const preStopS = Number(preStop[1]);
    const drainEnv = container?.env?.find((e) => e.name === 'DRAIN_WINDOW_MS')?.value;
    const drainMs = Number(drainEnv ?? GatewayEnv.properties.DRAIN_WINDOW_MS.default);
    const graceS = pod.terminationGracePeriodSeconds ?? 30;
    assert.ok(
      graceS >= preStopS + drainMs / 1000 + 10,
      `grace ${graceS} s > preStop ${preStopS} s + drain ${drainMs} ms + 10 s`,
    );
  });

  test(`k8s ${overlay}: each deployable's environment should be variables its code reads, with secrets from Secrets`, () => {
    const config = ofKind<K8sObject & { data: Record<string, string> }>(objects, 'ConfigMap').find(
      (c) => c.metadata.name === 'ripple-config',
    );
    assert.ok(config);
    // Browser clients on another origin need it; production's default (unset) is none, so the
    // operator must see where to name the web app's origins.
    assert.equal(typeof config.data.CORS_ORIGINS, 'string', 'ripple-config sets CORS_ORIGINS');
    assert.equal(config.data.CORS_ORIGINS === '*', overlay === 'dev', 'any origin in dev only');
    for (const d of ours(objects).filter((x) => x.metadata.name in DEPLOYABLES)) {
      const name = d.metadata.name;
      const container = d.spec.template.spec.containers[0];
      assert.ok(container);
      assert.ok(
        container.envFrom?.some((e) => e.configMapRef?.name === 'ripple-config'),
        `${name} reads ripple-config`,
      );
      const env: Record<string, string> = { ...config.data };
      for (const e of container.env ?? [])
        env[e.name] =
          e.value ??
          (e.name === 'JWT_SECRET'
            ? 'a-secret-of-32-characters-long!!'
            : e.name === 'DATABASE_URL'
              ? 'postgresql://h/db'
              : 'node-1');
      assert.deepEqual(envProblems(name, env), [], `${name} environment`);
      const secretRefs = (container.env ?? []).filter((e) => e.valueFrom?.secretKeyRef).map((e) => e.name);
      assert.ok(secretRefs.includes('JWT_SECRET'), `${name} JWT_SECRET from a Secret`);
      if (name !== 'fanout-gateway')
        assert.ok(secretRefs.includes('DATABASE_URL'), `${name} DATABASE_URL from a Secret`);
      assert.equal(
        env.OTEL_EXPORTER_OTLP_ENDPOINT,
        'http://otel-collector:4318',
        `${name} sends traces to the collector`,
      );
    }
    assert.ok(ofKind(objects, 'Service').some((s) => s.metadata.name === 'otel-collector'));
  });

  test(`k8s ${overlay}: ingress should be denied by default and opened per port`, () => {
    const policies = ofKind<K8sObject & { spec: { podSelector: object; policyTypes: string[]; ingress?: unknown[] } }>(
      objects,
      'NetworkPolicy',
    );
    assert.ok(
      policies.some(
        (p) =>
          JSON.stringify(p.spec.podSelector) === '{}' &&
          p.spec.policyTypes.includes('Ingress') &&
          p.spec.ingress === undefined,
      ),
      'a default-deny ingress policy',
    );
  });
}

test('k8s: the alerts should watch consumer lag, outbox age, outbox VACUUMs, 5xx rate, slow-consumer closes and delivery latency with metrics the code exports', () => {
  const rule = ofKind<K8sObject & { spec: { groups: { rules: { alert: string; expr: string }[] }[] } }>(
    rendered.prod ?? [],
    'PrometheusRule',
  )[0];
  assert.ok(rule);
  const exprs = rule.spec.groups.flatMap((g) => g.rules.map((r) => r.expr)).join('\n');
  const sources = [
    'libs/kafka/src/consumer.ts',
    'libs/outbox/src/service.ts',
    'libs/http/src/health.ts',
    'services/fanout-gateway/src/metrics.ts',
  ];
  const exported = sources.flatMap((f) => [...readRepoFile(f).matchAll(/name: '([a-z_]+)'/g)].map((m) => m[1]));
  for (const metric of [
    'kafka_consumer_lag_messages',
    'outbox_oldest_unsent_age_seconds',
    'outbox_vacuum_duration_seconds',
    'http_request_duration_seconds',
    'gateway_slow_consumer_closes_total',
    'gateway_delivery_latency_seconds',
  ]) {
    assert.ok(exported.includes(metric), `${metric} is exported by the code`);
    assert.match(exprs, new RegExp(`\\b${metric}`), `an alert uses ${metric}`);
  }
});

test('k8s/README.md should say where the settings live and the README that JWT_SECRET needs 16 characters', () => {
  const k8sReadme = readRepoFile('k8s/README.md');
  assert.match(k8sReadme, /ripple-databases/);
  assert.doesNotMatch(k8sReadme, /DATABASE_URLs? in `config\.yaml`/);
  const jwtRow = readRepoFile('README.md')
    .split('\n')
    .find((l) => l.startsWith('| `JWT_SECRET`'));
  assert.match(jwtRow ?? '', /16/, 'the configuration table gives the minimum length');
  assert.equal(envProblems('post-service', { JWT_SECRET: 'x'.repeat(16) }).length, 0);
});
