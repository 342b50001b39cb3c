import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeasedDirectory, MemoryHistory, MemoryLeasedSets, compareOffsets } from './index.js';
import { directoryContract, historyContract } from './contract.js';

directoryContract('memory', () => {
  let now = 1_000_000;
  const sets = new MemoryLeasedSets(() => now);
  return Promise.resolve({
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

test('compareOffsets should order stream ids numerically', () => {
  assert.equal(compareOffsets('10-0', '9-5'), 1);
  assert.equal(compareOffsets('9-10', '9-9'), 1);
  assert.equal(compareOffsets('0-0', '1-0'), -1);
  assert.equal(compareOffsets('5-5', '5-5'), 0);
});
