import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { Type } from '@sinclair/typebox';
import type { TObject, TProperties } from '@sinclair/typebox';
import { GatewayEnv } from '@ripple/fanout-gateway/config';
import { configTable, schemaRowProblems, unreadRowProblems, usedByProcesses } from './config-table.js';
import type { ComputedDefault } from './config-table.js';
import { OTEL_SDK_VARIABLE, PROCESSES } from './env-schema.js';
import { readRepoFile } from './manifests.js';

// The README's configuration table checked against the schemas every process loads its
// environment with: a row per variable, the processes that read it, its default and what it
// accepts. A setting added to a schema, or a bound changed, fails here until the README says so.

const rows = configTable(readRepoFile('README.md'));
const schemas: Record<string, TObject> = Object.fromEntries(
  Object.entries(PROCESSES).map(([name, p]) => [name, p.schema]),
);

/** Defaults the code computes at start-up, which the table describes in words. */
const COMPUTED: Record<string, ComputedDefault> = {
  NODE_ID: {
    text: 'hostname + random suffix',
    form: new RegExp(`^${hostname().replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}-[0-9a-f]{6}$`),
  },
};

/**
 * Variables read outside the schemas: the OpenTelemetry SDK's (`OTEL_*`, read by it and by
 * libs/telemetry's startTracing in the processes that trace), and in k8s the collector's
 * `TRACES_OTLP_ENDPOINT` (`${env:TRACES_OTLP_ENDPOINT}` in k8s/base/otel-collector/collector.yaml).
 */
const OTEL_ROW = /^OTEL_([A-Z_]+|\*)$/;
const COLLECTOR_VARIABLE = /^TRACES_OTLP_ENDPOINT$/;

test('the README configuration table should give every variable a process reads a row naming the processes that read it, its default and what it accepts', () => {
  assert.deepEqual(schemaRowProblems(rows, schemas, COMPUTED), []);
});

test('the README configuration table should name no variable that no process reads, except the OpenTelemetry SDK’s, read where tracing runs', () => {
  assert.deepEqual(unreadRowProblems(rows, schemas, OTEL_ROW), []);
  const traced = Object.keys(PROCESSES)
    .filter((p) => PROCESSES[p]?.traced)
    .sort();
  const otelRows = rows.filter((r) => r.variables.some((v) => OTEL_ROW.test(v)));
  assert.ok(otelRows.length > 0, 'the table documents the OpenTelemetry variables');
  for (const row of otelRows) {
    assert.deepEqual(usedByProcesses(row, Object.keys(PROCESSES)), traced, `README.md:${row.line} used by`);
    assert.ok(
      row.variables.every((v) => OTEL_ROW.test(v)),
      `README.md:${row.line} names only OTEL_* variables`,
    );
  }
});

test('the configuration table check should fail for a setting added without its row and for a bound changed without the README', () => {
  // Compared with what it reports for the schemas as they are, so that this tests the check alone.
  const baseline = new Set(schemaRowProblems(rows, schemas, COMPUTED));
  const problemsWithGateway = (properties: TProperties) =>
    schemaRowProblems(rows, { ...schemas, 'fanout-gateway': Type.Object(properties) }, COMPUTED).filter(
      (p) => !baseline.has(p),
    );
  assert.deepEqual(
    problemsWithGateway({ ...GatewayEnv.properties, WS_NEW_SETTING_MS: Type.Integer({ default: 5, minimum: 1 }) }),
    ['WS_NEW_SETTING_MS: needs a row of its own (rows naming it: none)'],
  );
  const buffer = GatewayEnv.properties.WS_SEND_BUFFER_BYTES;
  const minimum = Number(buffer.minimum);
  const moved = problemsWithGateway({
    ...GatewayEnv.properties,
    WS_SEND_BUFFER_BYTES: Type.Integer({ ...buffer, minimum: minimum + 1 }),
  });
  assert.equal(moved.length, 1, moved.join('\n'));
  assert.match(
    moved[0] ?? '',
    new RegExp(`^WS_SEND_BUFFER_BYTES \\(README\\.md:\\d+\\): accepted says .+, the code \`≥ ${minimum + 1}\`$`),
  );
});

test('k8s/README.md should name only variables a process reads, or the collector', () => {
  const read = new Set(Object.values(schemas).flatMap((s) => Object.keys(s.properties)));
  const named = [...readRepoFile('k8s/README.md').matchAll(/`([A-Z][A-Z0-9_]*)(=[^`]*)?`/g)].map((m) => m[1] ?? '');
  assert.ok(named.includes('JWT_SECRET') && named.includes('DRAIN_WINDOW_MS'), 'the variables are found');
  assert.deepEqual(
    named.filter((v) => !read.has(v) && !OTEL_SDK_VARIABLE.test(v) && !COLLECTOR_VARIABLE.test(v)),
    [],
  );
});
