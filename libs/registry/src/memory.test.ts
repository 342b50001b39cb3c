import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EPOCH_PATTERN,
  LeasedDirectory,
  MemoryDepartures,
  MemoryFenceTokens,
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
  fenceTokensContract,
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

fenceTokensContract('memory', () => {
  // A clock that moves on 1 ms per token: tokens follow the clock once the count is lost.
  let now = 1_000_000;
  const tokens = new MemoryFenceTokens(() => now++);
  return Promise.resolve({
    issuers: [tokens, tokens],
    lose: (scope: string) => {
      tokens.forget(scope);
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
  const shared = new MemoryNodeRoster(15_000, () => now);
  const graced = new MemoryNodeRoster(15_000, () => now, 15_000);
  return Promise.resolve({
    roster: () => shared,
    graced: () => graced,
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

/** Memory leased sets that count the presence renewals (`presence:` keys) of each `addMany`. */
class CountingSets extends MemoryLeasedSets {
  readonly renewals: number[] = [];
  override async addMany(entries: readonly { key: string; members: readonly string[] }[], ttlMs: number) {
    const presence = entries.filter((e) => e.key.includes('presence:')).flatMap((e) => e.members);
    if (presence.length > 0) this.renewals.push(presence.length);
    await super.addMany(entries, ttlMs);
  }
}

test('directory refresh should renew one share of the presence entries per heartbeat, each within its lease', async () => {
  let now = 1_000_000;
  const leaseMs = 3000; // a heartbeat every 1000 ms
  const sets = new CountingSets(() => now);
  const directory = new LeasedDirectory(sets, 'p:', 'a', leaseMs, 4 * leaseMs); // 4 shares
  const connections = Array.from({ length: 400 }, (_, i) => ({ userId: `u${i}`, connectionId: `c${i}` }));
  for (const c of connections) await directory.connect(c.userId, c.connectionId);
  assert.deepEqual(await directory.refresh({ channels: [], connections }), { refilled: true });
  assert.deepEqual(sets.renewals, [400], 'the first refresh renews every connection');
  for (let beat = 0; beat < 40; beat++) {
    now += 1000;
    assert.deepEqual(await directory.refresh({ channels: [], connections }), { refilled: false });
  }
  const perBeat = sets.renewals.slice(1);
  assert.equal(
    perBeat.reduce((a, b) => a + b, 0),
    4000,
    'each connection once every 4 heartbeats',
  );
  assert.ok(Math.max(...perBeat) < 200, `a share per heartbeat, not all 400: ${perBeat.join(',')}`);
  for (const c of connections) assert.deepEqual(await directory.connectionsOf(c.userId), [c.connectionId]);
});

test('directory refresh should renew every presence entry at once after the store lost its data', async () => {
  let now = 1_000_000;
  const sets = new CountingSets(() => now);
  const directory = new LeasedDirectory(sets, 'p:', 'a', 3000, 12_000);
  const connections = [
    { userId: 'u1', connectionId: 'c1' },
    { userId: 'u1', connectionId: 'c2' },
    { userId: 'u2', connectionId: 'c3' },
  ];
  await directory.refresh({ channels: [], connections });
  now += 1000;
  sets.clear();
  assert.deepEqual(await directory.refresh({ channels: [], connections }), { refilled: true });
  assert.deepEqual([await directory.connectionsOf('u1'), await directory.connectionsOf('u2')], [['c1', 'c2'], ['c3']]);
});
