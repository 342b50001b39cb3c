import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryNodeRoster } from '@ripple/registry';
import { waitUntil } from '@ripple/testing';
import { RegistryHeartbeat } from './registry-heartbeat.js';
import type { RegistryHeartbeatDeps } from './registry-heartbeat.js';

const INTERVAL_MS = 20;
const LEASE_MS = 3 * INTERVAL_MS;

/**
 * Node `nodeId`'s heartbeat on `roster`, every other part in memory; the `slow` part hangs from its
 * second run on, until `release`.
 */
function heartbeatOf(roster: MemoryNodeRoster, nodeId: string, slow: 'directory' | 'sweep' | 'none') {
  let release: () => void = () => undefined;
  const hung = new Promise<void>((resolve) => (release = resolve));
  const runs = { directory: 0, sweep: 0 };
  const deps: RegistryHeartbeatDeps = {
    nodeId,
    intervalMs: INTERVAL_MS,
    leaseMs: LEASE_MS,
    // As LeasedDirectory: its first refresh writes everything (refilled).
    refreshDirectory: async () => {
      if (runs.directory++ > 0 && slow === 'directory') await hung;
      return { refilled: runs.directory === 1 };
    },
    connections: () => [],
    roster,
    catchUp: () => Promise.resolve(),
    reinstate: () => Promise.resolve(),
    sweep: async () => {
      if (runs.sweep++ > 0 && slow === 'sweep') await hung;
    },
    onError: (err) => assert.fail(String(err)),
  };
  return { heartbeat: new RegistryHeartbeat(deps), release, runs };
}

for (const slow of ['directory', 'sweep'] as const) {
  test(`a node should keep its roster lease while its ${slow === 'directory' ? 'directory refresh' : 'sweep of dead nodes'} is slow (bulk Redis work, a big dead node), so that no live node reaps it`, async (t) => {
    const roster = new MemoryNodeRoster(LEASE_MS);
    const busy = heartbeatOf(roster, 'busy', slow);
    await busy.heartbeat.start();
    t.after(async () => {
      busy.release();
      await busy.heartbeat.stop();
    });
    // A peer sweeps on its own heartbeat, as every live node does, for several leases.
    const claimed: string[] = [];
    let sweeps = 0;
    const startedAt = Date.now();
    await waitUntil('a peer sweeping for five leases', 10_000, async () => {
      claimed.push(...(await roster.claimDead()).map((d) => d.nodeId));
      sweeps++;
      return sweeps >= 10 && Date.now() - startedAt > 5 * LEASE_MS;
    });
    assert.equal(busy.runs[slow] > 1, true, `the slow ${slow} was reached`);
    assert.deepEqual(claimed, [], 'the busy node is alive: never claimed as dead');
  });
}

test('a node whose heartbeat stopped should be claimed as dead', async () => {
  const roster = new MemoryNodeRoster(LEASE_MS);
  const node = heartbeatOf(roster, 'gone', 'none');
  await node.heartbeat.start();
  await node.heartbeat.stop();
  await waitUntil('the stopped node to be claimed', 10_000, async () =>
    (await roster.claimDead()).some((d) => d.nodeId === 'gone'),
  );
});

test('a live node that a peer claimed as dead (it stalled past its lease and the grace) should register its connections again and reinstate their presence, once', async () => {
  let now = 0;
  const roster = new MemoryNodeRoster(LEASE_MS, () => now, LEASE_MS);
  const served = [{ userId: 'u1', connectionId: 'c1' }];
  let refilled = true; // the first refresh writes everything
  let reinstated = 0;
  let renewals = 0;
  const heartbeat = new RegistryHeartbeat({
    nodeId: 'stalled',
    intervalMs: INTERVAL_MS,
    leaseMs: LEASE_MS,
    refreshDirectory: () => {
      const result = { refilled };
      refilled = false;
      return Promise.resolve(result);
    },
    connections: () => served,
    roster: {
      renew: (...args) => {
        renewals++;
        return roster.renew(...args);
      },
      reaping: (id) => roster.reaping(id),
    },
    catchUp: () => Promise.resolve(),
    reinstate: () => {
      reinstated++;
      return Promise.resolve();
    },
    sweep: () => Promise.resolve(),
    onError: (err) => assert.fail(String(err)),
    now: () => now,
  });
  await heartbeat.start();
  try {
    await waitUntil('a few renewals', 10_000, () => renewals >= 5);
    assert.equal(reinstated, 0, 'never claimed: nothing to reinstate');
    // The node's clock and its peers' jump past its lease and the grace, before its next renewal.
    now += 3 * LEASE_MS;
    const [claimed] = await roster.claimDead();
    assert.deepEqual(claimed, { nodeId: 'stalled', connections: served });
    // The claimer is still announcing the node's users offline: the node waits for it.
    const seen = renewals;
    await waitUntil('several upkeeps', 10_000, () => renewals >= seen + 6);
    assert.equal(reinstated, 0, 'not while the claimer announces');
    await roster.reaped('stalled');
    await waitUntil('the node reinstated', 10_000, () => reinstated === 1);
    // Its connections are listed again: a crash now still gets them announced offline.
    now += 3 * LEASE_MS;
    await heartbeat.stop();
    now += 3 * LEASE_MS;
    assert.deepEqual(await roster.claimDead(), [{ nodeId: 'stalled', connections: served }]);
    assert.equal(reinstated, 1, 'once');
  } finally {
    await heartbeat.stop();
  }
});
