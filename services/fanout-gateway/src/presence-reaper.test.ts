import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeasedDirectory, MemoryLeasedSets, MemoryNodeRoster } from '@ripple/registry';
import { createLogger } from '@ripple/telemetry';
import { PresenceReaper } from './presence-reaper.js';

test('presence reaper should announce each user of a dead node offline once, across live nodes, unless they are connected elsewhere', async () => {
  let now = 1_000_000;
  const leaseMs = 15_000;
  const sets = new MemoryLeasedSets(() => now);
  const roster = new MemoryNodeRoster(leaseMs, () => now);
  const dir = (nodeId: string) => new LeasedDirectory(sets, 't:', nodeId, leaseMs, 4 * leaseMs);
  // x serves u1 (two connections) and u2; u2 also has a connection on y.
  const onX = [
    { userId: 'u1', connectionId: 'x1' },
    { userId: 'u1', connectionId: 'x2' },
    { userId: 'u2', connectionId: 'x3' },
  ];
  const onY = [{ userId: 'u2', connectionId: 'y1' }];
  await dir('x').refresh({ channels: [], connections: onX });
  await roster.renew('x', onX);
  await dir('y').refresh({ channels: [], connections: onY });
  await roster.renew('y', onY);
  await roster.renew('z', []);

  const published: string[] = [];
  const reaper = (nodeId: string) =>
    new PresenceReaper({
      roster,
      directory: dir(nodeId),
      publishOffline: (o) => {
        published.push(`${o.userId}@${o.nodeId}`);
        return Promise.resolve();
      },
      logger: createLogger('t', 'silent'),
    });
  assert.deepEqual(await reaper('y').sweep(), [], 'nobody died');

  // x crashes: y and z keep renewing; x's connections are still inside their lease.
  now += leaseMs / 2;
  await dir('y').refresh({ channels: [], connections: onY });
  await roster.renew('y', onY);
  await roster.renew('z', []);
  now += leaseMs / 2;
  await Promise.all([reaper('y').sweep(), reaper('z').sweep()]);
  assert.deepEqual(published, ['u1@x'], 'u1 once; u2 is still connected to y');
  assert.equal(await roster.reaping('x'), false, 'its claimer said it is done: x, if alive, may register again');
  assert.deepEqual(
    [await dir('y').connectionsOf('u1'), await dir('y').connectionsOf('u2')],
    [[], ['y1']],
    'the dead node’s connections leave presence when it is reaped, not when their leases lapse',
  );
  await Promise.all([reaper('y').sweep(), reaper('z').sweep()]);
  assert.deepEqual(published, ['u1@x'], 'never twice');
});

test('a node restarted under its old id should announce offline the users its crashed incarnation served', async () => {
  const roster = new MemoryNodeRoster(15_000);
  const directory = new LeasedDirectory(new MemoryLeasedSets(), 't:', 'n1', 15_000);
  const offline: string[] = [];
  const reaper = new PresenceReaper({
    roster,
    directory,
    publishOffline: (o) => {
      offline.push(o.userId);
      return Promise.resolve();
    },
    logger: createLogger('t', 'silent'),
  });
  // The crashed incarnation served u1 (only there) and u2 (also connected to another node).
  await roster.renew('n1', [
    { userId: 'u1', connectionId: 'c1' },
    { userId: 'u2', connectionId: 'c2' },
  ]);
  await directory.connect('u1', 'c1');
  await directory.connect('u2', 'c2');
  await directory.connect('u2', 'elsewhere');
  assert.deepEqual(await reaper.reapPrevious('n1'), ['u1']);
  assert.deepEqual(offline, ['u1']);
  assert.deepEqual(await reaper.reapPrevious('n1'), [], 'once');
});
