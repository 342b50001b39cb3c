import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertPromtoolAccepts } from '@ripple/testing';
import { Counter, Gauge, Histogram, createMetricsRegistry } from './metrics.js';

test('a process registry with every kind of metric should pass promtool check metrics', async () => {
  const registry = createMetricsRegistry('promtool-test');
  new Counter({ name: 'things_total', help: 'things', registers: [registry] }).inc();
  new Gauge({ name: 'things_open', help: 'open things', registers: [registry] }).set(2);
  new Histogram({ name: 'thing_seconds', help: 'thing time', registers: [registry] }).observe(0.1);
  const exposition = await registry.metrics();
  assert.doesNotMatch(exposition, /# TYPE \S+_total gauge/);
  assert.match(exposition, /^nodejs_active_handles\{/m, 'the per-type gauge is kept');
  await assertPromtoolAccepts('the default registry', exposition);
});

test('promtool should refuse a gauge named like a counter (the check can fail)', async () => {
  await assert.rejects(
    assertPromtoolAccepts('a bad exposition', '# HELP x_total x\n# TYPE x_total gauge\nx_total 1\n'),
    /non-counter metrics should not have "_total" suffix/,
  );
});
