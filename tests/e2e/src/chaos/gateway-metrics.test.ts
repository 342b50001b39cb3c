import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bucketQuantile, gatewaySummary, histogramsBetween, parseScrape } from './gateway-metrics.js';

const exposition = (counts: [number, number, number], lagMax: number) =>
  [
    '# HELP gateway_connection_setup_seconds set-up',
    '# TYPE gateway_connection_setup_seconds histogram',
    `gateway_connection_setup_seconds_bucket{le="0.01",phase="total"} ${counts[0]}`,
    `gateway_connection_setup_seconds_bucket{le="1",phase="total"} ${counts[1]}`,
    `gateway_connection_setup_seconds_bucket{le="+Inf",phase="total"} ${counts[2]}`,
    `gateway_connection_setup_seconds_sum{phase="total"} 12.5`,
    `gateway_connection_setup_seconds_count{phase="total"} ${counts[2]}`,
    'registry_operation_duration_seconds_bucket{le="0.1",operation="connects.open"} 4',
    'registry_operation_duration_seconds_bucket{le="+Inf",operation="connects.open"} 4',
    'registry_operation_duration_seconds_bucket{le="+Inf",operation="history.read"} 9',
    `nodejs_eventloop_lag_max_seconds ${lagMax}`,
    'nodejs_eventloop_lag_p99_seconds 0.02',
  ].join('\n');

test('gateway metrics should count only what happened between two scrapes of the same process, and whole for a process started since', () => {
  const before = [parseScrape(exposition([10, 10, 10], 0.5), 1)];
  const after = [parseScrape(exposition([10, 20, 30], 2.5), 1), parseScrape(exposition([0, 1, 1], 0.1), 2)];
  const total = histogramsBetween(before, after).get('gateway_connection_setup_seconds{phase="total"}');
  assert.deepEqual(
    [...(total ?? [])],
    [
      [0.01, 0],
      [1, 11],
      [Infinity, 21],
    ],
  );
  assert.equal(after[0]?.loopLagMaxS, 2.5);
  const summary = gatewaySummary(before, after);
  assert.match(
    summary,
    /gateway_connection_setup_seconds\{phase="total"\}: 21 observed, p50 ≤1000 ms, p99 >last bucket/,
  );
  assert.match(summary, /connects\.open/);
  assert.doesNotMatch(summary, /history\.read/, 'only the connect path’s registry calls');
  assert.match(summary, /gateway pid 1: event loop delay since the previous scrape p99 20 ms, max 2500 ms/);
});

test('a bucket quantile should be the upper bound of the bucket that holds it, and undefined for an empty histogram', () => {
  const buckets = new Map([
    [0.1, 50],
    [1, 99],
    [Infinity, 100],
  ]);
  assert.equal(bucketQuantile(buckets, 0.5), 0.1);
  assert.equal(bucketQuantile(buckets, 0.99), 1);
  assert.equal(bucketQuantile(buckets, 1), Infinity);
  assert.equal(bucketQuantile(new Map([[Infinity, 0]]), 0.5), undefined);
});
