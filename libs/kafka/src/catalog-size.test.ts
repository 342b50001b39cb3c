import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Catalog, toOutboxMessage, validateEvent } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import { MAX_PRODUCE_REQUEST_BYTES, recordSizeBound } from './producer.js';

// Every event the catalog accepts must fit one produce request: a larger one is set aside by the
// outbox (refused), never published. So for each event type, the largest event its schema allows,
// built from the schema itself, with the largest headers it can carry, must be within the bound.

/** The subset of JSON Schema the catalog's TypeBox schemas use. */
interface Schema {
  readonly type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean' | 'null';
  readonly const?: unknown;
  readonly anyOf?: readonly Schema[];
  readonly properties?: Readonly<Record<string, Schema>>;
  readonly items?: Schema;
  readonly maxItems?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: string;
  readonly format?: string;
  readonly minimum?: number;
  readonly maximum?: number;
}

/**
 * Characters, worst first for a record's size: a lone surrogate is 6 bytes in JSON (`\udXXX`) and
 * 3 in a UTF-8 header; a control character 6 and 1; U+0800 3 and 3; `"` 2 and 1. Each counts as
 * one towards `maxLength` (UTF-16 code units, as TypeBox counts).
 */
const FILL = ['\ud800', '\u0001', '\u0800', '"', 'a'];

/** The largest string of `length` characters in `format` (the formats the catalog registers). */
const FORMATS: Record<string, (maxLength: number | undefined) => string | undefined> = {
  uuid: () => '00000000-0000-4000-8000-000000000000',
  'date-time': (max) => (max === undefined ? undefined : `2026-01-01T00:00:00.${'1'.repeat(max - 26)}+00:00`),
};

/**
 * The value of `schema` whose JSON is the largest it allows, with every optional property present;
 * anything unbounded (a string without maxLength, an array without maxItems) is added to
 * `unbounded` by its path and stands in small.
 */
function largest(schema: Schema, path: string, unbounded: string[]): unknown {
  if (schema.const !== undefined) return schema.const;
  if (schema.anyOf) {
    const options = schema.anyOf.map((s) => largest(s, path, unbounded));
    return options.reduce((a, b) => (JSON.stringify(b).length > JSON.stringify(a).length ? b : a));
  }
  switch (schema.type) {
    case 'object':
      return Object.fromEntries(
        Object.entries(schema.properties ?? {}).map(([k, s]) => [k, largest(s, `${path}/${k}`, unbounded)]),
      );
    case 'array': {
      if (schema.maxItems === undefined) unbounded.push(`${path}: no maxItems`);
      const item = largest(schema.items ?? {}, `${path}/*`, unbounded);
      return Array.from({ length: schema.maxItems ?? 1 }, () => item);
    }
    case 'string': {
      if (schema.format !== undefined) {
        const build = FORMATS[schema.format];
        assert.ok(build, `${path}: format ${schema.format} unknown to this test`);
        const value = build(schema.maxLength);
        if (value !== undefined) return value;
        unbounded.push(`${path}: ${schema.format} without maxLength`);
        return build(40);
      }
      if (schema.maxLength === undefined) unbounded.push(`${path}: no maxLength`);
      const length = schema.maxLength ?? Math.max(1, schema.minLength ?? 0);
      const pattern = schema.pattern === undefined ? undefined : new RegExp(schema.pattern);
      const fill = FILL.find((c) => pattern?.test(c.repeat(length)) ?? true);
      assert.ok(fill !== undefined, `${path}: no character of ${JSON.stringify(FILL)} matches ${schema.pattern}`);
      return fill.repeat(length);
    }
    case 'integer':
    case 'number':
      assert.ok(schema.maximum !== undefined, `${path}: no maximum`);
      return schema.minimum !== undefined && String(schema.minimum).length > String(schema.maximum).length
        ? schema.minimum
        : schema.maximum;
    case 'boolean':
      return false;
    case 'null':
    case undefined:
      assert.fail(`${path}: schema type ${schema.type} unknown to this test`);
  }
}

// W3C trace context as OpenTelemetry's TraceState keeps it: 32 members, 256-character keys and values.
const trace = {
  traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  tracestate: Array.from({ length: 32 }, (_, i) => `k${i}`.padEnd(256, 'k') + '=' + 'v'.repeat(256)).join(','),
};

test('the largest event of every type the catalog accepts should fit one produce request', (t) => {
  const problems: string[] = [];
  let biggest = { type: '', bytes: 0 };
  for (const [type, entry] of Object.entries(Catalog)) {
    const unbounded: string[] = [];
    const event = largest(entry.schema, type, unbounded) as AnyEvent;
    assert.doesNotThrow(() => validateEvent(event), `${type}: the largest event built is one the catalog accepts`);
    problems.push(...unbounded);
    const message = toOutboxMessage(event, trace);
    const bytes = recordSizeBound({ key: message.key, value: message.value, headers: message.headers });
    if (bytes > MAX_PRODUCE_REQUEST_BYTES) problems.push(`${type}: ${bytes} bytes > ${MAX_PRODUCE_REQUEST_BYTES}`);
    if (bytes > biggest.bytes) biggest = { type, bytes };
  }
  t.diagnostic(`the largest: ${biggest.type}, ${biggest.bytes} bytes`);
  assert.deepEqual(problems, []);
});
