import { test } from 'node:test';
import assert from 'node:assert/strict';
import { describeMisses, explainMisses, stageOf } from './diagnosis.js';
import type { EventWhereabouts } from './diagnosis.js';
import { Ledger, formatReport, withMisses } from './ledger.js';

const at = (where: Partial<EventWhereabouts>): EventWhereabouts => ({ outbox: 'sent', deadLettered: false, ...where });
const onTopic = (committed: boolean) => ({ partition: 2, offset: 41, committed });

test('a missing event should be placed at the furthest hop it reached', () => {
  assert.equal(stageOf(at({ outbox: 'absent' })), 'not-in-outbox');
  assert.equal(stageOf(at({ outbox: 'unsent' })), 'in-outbox');
  assert.equal(stageOf(at({ outbox: 'sent' })), 'relayed-not-on-topic');
  assert.equal(stageOf(at({ topic: onTopic(false) })), 'on-topic');
  assert.equal(stageOf(at({ topic: onTopic(true) })), 'committed-not-routed');
  assert.equal(stageOf(at({ topic: onTopic(true), deadLettered: true })), 'dead-lettered');
  assert.equal(stageOf(at({ topic: onTopic(true), historyOffset: '7' })), 'in-history');
  // An unsent row whose record is on the topic was published and not marked yet: the record counts.
  assert.equal(stageOf(at({ outbox: 'unsent', topic: onTopic(false) })), 'on-topic');
});

test('ledger should list each missing delivery with its client node and the followers that had the event', () => {
  const ledger = new Ledger();
  for (const c of ['c1', 'c2', 'c3']) ledger.follow(c, 'creator:a');
  ledger.node('c1', 'gw0');
  for (const id of ['p1', 'p2']) ledger.accept('creator:a', id);
  ledger.receive('c2', 'p1');
  ledger.receive('c3', 'p1');
  ledger.receive('c2', 'p2');
  ledger.gap('c3');
  ledger.refetch('c3', ['p2']);
  ledger.receive('c1', 'p2');
  assert.deepEqual(ledger.misses(), [{ client: 'c1', channel: 'creator:a', id: 'p1', othersGotIt: 2, node: 'gw0' }]);
  assert.equal(ledger.missing(), 1);
  assert.equal(ledger.delivered('c1', 'p2'), true);
  assert.equal(ledger.delivered('c1', 'p1'), false);
});

test('a miss that arrives during the extra wait should be told as slow, not lost', () => {
  const misses = [
    { client: 'c1', channel: 'creator:a', id: 'p1', node: 'gw0', othersGotIt: 0 },
    { client: 'c2', channel: 'creator:a', id: 'p1', node: 'gw1', othersGotIt: 0 },
    { client: 'c1', channel: 'creator:a', id: 'p2', node: 'gw0', othersGotIt: 1 },
  ];
  const report = explainMisses({
    afterMs: 60_000,
    extraMs: 60_000,
    misses,
    before: new Map([
      ['p1', at({ outbox: 'unsent' })],
      ['p2', at({ topic: onTopic(false), historyOffset: '3' })],
    ]),
    arrivedAfterMs: new Map([
      ['c1\np1', 4000],
      ['c2\np1', 4100],
      ['c1\np2', 12_400],
    ]),
    after: new Map(),
  });
  assert.deepEqual(
    [
      report.missing,
      report.stages,
      report.nodes,
      report.othersGotIt,
      report.late,
      report.lastLateMs,
      report.stillMissing,
    ],
    [3, { 'in-outbox': 2, 'in-history': 1 }, { gw0: 2, gw1: 1 }, 1, 3, 12_400, 0],
  );
  assert.equal(
    describeMisses(report),
    'missing after 60 s: 2 in-outbox, 1 in-history (by client node: 2 gw0, 1 gw1; 1 had reached another follower); ' +
      'all 3 arrived within 60 s more (last 12 s late): SLOW, not lost',
  );
});

test('a miss whose event a consumer committed past without routing it should be told as lost', () => {
  const misses = [
    { client: 'c1', channel: 'creator:a', id: 'p1', othersGotIt: 0 },
    { client: 'c1', channel: 'creator:a', id: 'p2', othersGotIt: 0 },
  ];
  const report = explainMisses({
    afterMs: 60_000,
    extraMs: 30_000,
    misses,
    before: new Map([
      ['p1', at({ topic: onTopic(true) })],
      ['p2', at({ outbox: 'unsent' })],
    ]),
    arrivedAfterMs: new Map(),
    // The second read could not place p2 (a store did not answer): unknown, not lost.
    after: new Map([['p1', at({ topic: onTopic(true) })]]),
  });
  assert.deepEqual(report.stillStages, { 'committed-not-routed': 1, unknown: 1 });
  assert.match(
    describeMisses(report),
    /0 arrived within 30 s more; 2 still missing \(1 committed-not-routed, 1 unknown\): 1 LOST$/,
  );
  assert.match(
    report.examples[0] ?? '',
    /^c1 \(node \?\) creator:a p1: committed-not-routed .*still missing \(committed-not-routed\)$/,
  );
});

test('report should carry the explanation of missing deliveries in the verdict and the JSON line', () => {
  const ledger = new Ledger();
  ledger.follow('c1', 'creator:a');
  ledger.accept('creator:a', 'p1');
  const report = explainMisses({
    afterMs: 1000,
    extraMs: 1000,
    misses: ledger.misses(),
    before: new Map([['p1', at({ outbox: 'unsent' })]]),
    arrivedAfterMs: new Map([['c1\np1', 300]]),
    after: new Map(),
  });
  const result = withMisses(ledger.result('kafka-restart'), report);
  assert.match(
    result.failures[0] ?? '',
    /^1 of 1 deliveries missing \(missing after 1 s: 1 in-outbox .*SLOW, not lost\)$/,
  );
  const json = JSON.parse(formatReport([result]).split('\n').at(-1) ?? '') as {
    scenarios: { misses: { stages: Record<string, number> } }[];
  };
  assert.deepEqual(json.scenarios[0]?.misses.stages, { 'in-outbox': 1 });
});
