import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ledger, formatReport, percentile } from './ledger.js';

test('ledger should count a delivery as made when received or refetched after a gap', () => {
  const ledger = new Ledger();
  ledger.follow('c1', 'creator:a');
  ledger.follow('c2', 'creator:a');
  for (const id of ['p1', 'p2', 'p3']) ledger.accept('creator:a', id);
  ledger.receive('c1', 'p1');
  ledger.receive('c1', 'p2');
  ledger.receive('c1', 'p3');
  ledger.receive('c2', 'p1');
  assert.equal(ledger.missing(), 2);
  ledger.gap('c2');
  ledger.refetch('c2', ['p1', 'p2', 'p3']);
  assert.equal(ledger.complete(), true);
  const r = ledger.result('drops');
  assert.deepEqual([r.published, r.expected, r.delivered, r.duplicates, r.gaps, r.failures], [3, 6, 6, 0, 1, []]);
});

test('ledger should fail a scenario with a missing delivery, a duplicate or a slow recovery', () => {
  const ledger = new Ledger();
  ledger.follow('c1', 'creator:a');
  ledger.accept('creator:a', 'p1');
  ledger.accept('creator:a', 'p2');
  ledger.receive('c1', 'p1');
  ledger.receive('c1', 'p1');
  ledger.recovered(2500);
  ledger.closed(1006);
  ledger.closed(1006);
  ledger.rss('gateway-1', 50 * 2 ** 20);
  ledger.rss('gateway-1', 10 * 2 ** 20);
  const r = ledger.result('kill');
  assert.deepEqual(r.failures, ['1 of 2 deliveries missing', '1 duplicates', 'recovery p99 2500 ms over 2000 ms']);
  assert.deepEqual(r.peakRssMb, { 'gateway-1': 50 });
  assert.deepEqual(r.closeCodes, { 1006: 2 });
});

test('ledger should fail a scenario in which an outage was answered 500 rather than 503', () => {
  const ledger = new Ledger();
  ledger.follow('c1', 'creator:a');
  ledger.accept('creator:a', 'p1');
  ledger.receive('c1', 'p1');
  ledger.refused(503);
  ledger.refused(503);
  ledger.refused('unreachable');
  assert.deepEqual(ledger.result('pg').failures, []);
  ledger.refused(500);
  const r = ledger.result('pg');
  assert.deepEqual(r.failures, ['1 requests answered 500, not 503']);
  assert.deepEqual(r.refused, { 503: 2, unreachable: 1, 500: 1 });
  assert.equal(r.published, 1, 'refused requests are not accepted events');
});

test('ledger should fail a scenario in which nothing was accepted', () => {
  assert.deepEqual(new Ledger().result('idle').failures, ['no event was accepted']);
});

test('ledger should refuse events for a client that follows no channel', () => {
  assert.throws(() => new Ledger().receive('nobody', 'p1'), /does not follow/);
});

test('percentile should take the nearest rank', () => {
  const values = Array.from({ length: 100 }, (_, i) => i + 1);
  assert.equal(percentile(values, 0.99), 99);
  assert.equal(percentile([5], 0.99), 5);
  assert.equal(percentile([], 0.99), 0);
});

test('report should end with one JSON line holding every scenario', () => {
  const ledger = new Ledger();
  ledger.follow('c1', 'creator:a');
  ledger.accept('creator:a', 'p1');
  ledger.receive('c1', 'p1');
  const report = formatReport([ledger.result('sigkill')]);
  const lines = report.split('\n');
  assert.match(lines[2] ?? '', /^\| sigkill \| 1 \| 1 \| 1\/1 \(100\.00%\) \| 0 \| 0 \| 0 \| {2}\| {2}\|/);
  const json = JSON.parse(lines.at(-1) ?? '') as { scenarios: { name: string; delivered: number }[] };
  assert.deepEqual(
    json.scenarios.map((s) => [s.name, s.delivered]),
    [['sigkill', 1]],
  );
});
