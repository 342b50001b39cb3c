import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EPOCH_PATTERN,
  LeasedDirectory,
  MemoryDepartures,
  MemoryHistory,
  MemoryLeasedSets,
  MemoryNodeRoster,
  SequentialConnectLog,
  SequentialRouteLog,
  OFFSET_PATTERN,
  compareOffsets,
  isLaterEpoch,
  newEpoch,
} from './index.js';
import {
  connectLogContract,
  departuresContract,
  directoryContract,
  historyContract,
  rosterContract,
  routeLogContract,
} from './contract.js';

directoryContract('memory', () => {
  let now = 1_000_000;
  const sets = new MemoryLeasedSets(() => now);
  return Promise.resolve({
    wipe: () => {
      sets.clear();
      return Promise.resolve();
    },
    forNode: (nodeId: string) => new LeasedDirectory(sets, 'p:', nodeId, 15_000),
    expire: () => {
      now += 15_001;
      return Promise.resolve();
    },
  });
});

historyContract('memory', (maxLength) => {
  const history = new MemoryHistory(maxLength);
  return Promise.resolve({
    history,
    lose: (channel: string) => {
      history.forget(channel);
      return Promise.resolve();
    },
  });
});

routeLogContract('memory', () => {
  let now = 1_000_000;
  const sets = new MemoryLeasedSets(() => now);
  const history = new MemoryHistory(1000);
  const forNode = (nodeId: string) => new LeasedDirectory(sets, 'p:', nodeId, 15_000);
  return Promise.resolve({
    routes: new SequentialRouteLog(history, forNode('router')),
    history,
    forNode,
    expire: () => {
      now += 15_001;
      return Promise.resolve();
    },
  });
});

connectLogContract('memory', () => {
  const sets = new MemoryLeasedSets();
  const history = new MemoryHistory(1000);
  const roster = new MemoryNodeRoster(15_000);
  const forNode = (nodeId: string) => new LeasedDirectory(sets, 'p:', nodeId, 15_000);
  return Promise.resolve({
    connects: new SequentialConnectLog(forNode('any'), history, roster),
    history,
    forNode,
    roster,
  });
});

departuresContract('memory', () => Promise.resolve(new MemoryDepartures(60_000)));

rosterContract('memory', () => {
  let now = 1_000_000;
  return Promise.resolve({
    roster: (() => {
      const shared = new MemoryNodeRoster(15_000, () => now);
      return () => shared;
    })(),
    expire: () => {
      now += 15_001;
      return Promise.resolve();
    },
  });
});

test('compareOffsets should order offsets numerically', () => {
  assert.equal(compareOffsets('10', '9'), 1);
  assert.equal(compareOffsets('0', '1'), -1);
  assert.equal(compareOffsets('5', '5'), 0);
});

test('an offset should be a decimal sequence number, and a later epoch should compare greater', () => {
  for (const ok of ['0', '1', '999999999999999']) assert.ok(OFFSET_PATTERN.test(ok), ok);
  for (const bad of ['', '-1', '01', '1-0', '1e3', '9999999999999999']) assert.ok(!OFFSET_PATTERN.test(bad), bad);
  const older = newEpoch(1_700_000_000_000_000, 'aaaaaaaaaa');
  const newer = newEpoch(1_700_000_000_000_001, '0000000000');
  assert.match(older, EPOCH_PATTERN);
  assert.ok(isLaterEpoch(newer, older));
  assert.ok(!isLaterEpoch(older, newer));
});
