import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  LeasedDirectory,
  MemoryHistory,
  MemoryLeasedSets,
  MemoryNodeRoster,
  SequentialConnectLog,
} from '@ripple/registry';
import { createLogger } from '@ripple/telemetry';
import { Connections } from './connections.js';
import type { Connection, PresenceChange } from './connections.js';
import type { ConnectLog } from '@ripple/registry';
import { unitMetrics } from './single-node.js';

function connection(id: string, userId: string): Connection {
  return { id, userId, channels: () => [], moveAway: () => undefined, revoke: () => Promise.resolve() };
}

/**
 * Node `nodeId`'s connections on `connects`, each presence change it publishes appended to
 * `changes` as `<label><change>:<userId>` (a label such as `n1 ` tells nodes apart).
 */
function recordingNode(nodeId: string, connects: ConnectLog, changes: string[], label = ''): Connections {
  return new Connections(nodeId, connects, unitMetrics(), createLogger('t', 'silent'), (batch) => {
    changes.push(...batch.map((c) => `${label}${c.change}:${c.connection.userId}`));
    return Promise.resolve();
  });
}

/**
 * Nodes of one cluster (shared leased sets, roster and history), each recording its presence
 * changes into the one `changes` list, prefixed with its id.
 */
function cluster() {
  const sets = new MemoryLeasedSets();
  const roster = new MemoryNodeRoster(1_000);
  const history = new MemoryHistory(10);
  const changes: string[] = [];
  const node = (nodeId: string) =>
    recordingNode(
      nodeId,
      new SequentialConnectLog(new LeasedDirectory(sets, 't:', nodeId, 60_000), history, roster),
      changes,
      `${nodeId} `,
    );
  return { sets, roster, changes, node };
}

test('connections should publish presence off the connect path, in order, a batch at a time', async () => {
  const directory = new LeasedDirectory(new MemoryLeasedSets(), 't:', 'n1', 15_000);
  const metrics = unitMetrics();
  const batches: string[][] = [];
  let release: () => void = () => undefined;
  const connects = new SequentialConnectLog(directory, new MemoryHistory(10));
  const live = new Connections('n1', connects, metrics, createLogger('t', 'silent'), (changes) => {
    batches.push(
      changes.map((c: { change: PresenceChange; connection: Connection }) => `${c.change}:${c.connection.userId}`),
    );
    // The broker is slow: the first batch is still in flight while more changes happen.
    return batches.length === 1 ? new Promise<void>((r) => (release = r)) : Promise.resolve();
  });
  const a = connection('c1', 'u1');
  const b = connection('c2', 'u2');
  const own = (c: Connection) => ({ channel: `user:${c.userId}`, hold: true });
  await live.add(a, own(a)); // resolves although its presence event has not been published
  await live.add(b, own(b));
  await live.add(connection('c3', 'u1'), own(a)); // u1 was online already: no change
  await live.remove(a);
  assert.deepEqual(batches, [['online:u1']]);
  release();
  await live.settled();
  assert.deepEqual(batches, [['online:u1'], ['online:u2']]);
  await live.remove(connection('c3', 'u1'));
  await live.settled();
  assert.deepEqual(batches.at(-1), ['offline:u1']);
});

test('a closed connection should leave the node roster and presence once, however often it is removed', async () => {
  const directory = new LeasedDirectory(new MemoryLeasedSets(), 't:', 'n1', 15_000);
  const metrics = unitMetrics();
  const roster = new MemoryNodeRoster(15_000);
  const changes: string[] = [];
  const live = new Connections(
    'n1',
    new SequentialConnectLog(directory, new MemoryHistory(10), roster),
    metrics,
    createLogger('t', 'silent'),
    (batch) => {
      changes.push(...batch.map((c) => `${c.change}:${c.connection.id}`));
      return Promise.resolve();
    },
  );
  const a = connection('c1', 'u1');
  await live.add(a, { channel: 'user:u1', hold: true });
  await live.remove(a);
  await live.add(connection('c2', 'u1'), { channel: 'user:u1', hold: false });
  await live.remove(a); // a second close of c1, after the user came back with c2
  await live.settled();
  assert.deepEqual(changes, ['online:c1', 'offline:c1', 'online:c2'], 'no second offline for c1');
  assert.deepEqual(await directory.connectionsOf('u1'), ['c2']);
  assert.deepEqual(await roster.claimPrevious('n1'), {
    nodeId: 'n1',
    connections: [{ userId: 'u1', connectionId: 'c2' }],
  });
});

test('a draining node should hand its users over: no presence change for one who moves, one offline once released for one who does not', async () => {
  const { sets, roster, changes, node } = cluster();
  const [draining, peer] = [node('n1'), node('n2')];
  const mover = connection('c1', 'mover');
  const leaver = connection('c2', 'leaver');
  await draining.add(mover, { channel: 'user:mover', hold: true });
  await draining.add(leaver, { channel: 'user:leaver', hold: true });
  draining.handOver();
  await draining.remove(mover);
  await draining.remove(leaver);
  await draining.remove(leaver); // closed twice: counted once
  assert.equal(draining.handedOver, 2);
  assert.equal(draining.size, 0);
  await peer.add(connection('c3', 'mover'), { channel: 'user:mover', hold: true });
  await Promise.all([draining.settled(), peer.settled()]);
  assert.deepEqual(changes, ['n1 online:mover', 'n1 online:leaver'], 'the move changes no presence');

  assert.equal(await draining.releaseHandedOver(), 2);
  await draining.settled();
  assert.deepEqual(changes.slice(2), ['n1 offline:leaver']);
  const directory = new LeasedDirectory(sets, 't:', 'n2', 60_000);
  assert.deepEqual(await directory.connectionsOf('mover'), ['c3']);
  assert.deepEqual(await directory.connectionsOf('leaver'), []);
  assert.deepEqual(await roster.claimPrevious('n1'), { nodeId: 'n1', connections: [] }, 'its roster list is empty');
  assert.equal(await draining.releaseHandedOver(), 0, 'released once');
  // A connection whose set-up ended after that (it is closed at once: the node drains).
  const late = connection('c4', 'late');
  await draining.add(late, { channel: 'user:late', hold: true });
  await draining.remove(late);
  await draining.settled();
  assert.deepEqual(changes.slice(3), ['n1 online:late', 'n1 offline:late'], 'released at once, not kept');
});

test('when every node drains at once, each should announce its own users offline', async () => {
  const { changes, node } = cluster();
  const nodes = ['n1', 'n2'].map(node);
  const [a, b] = nodes as [Connections, Connections];
  const both = [connection('c1', 'both'), connection('c2', 'both')];
  await a.add(connection('c0', 'only-a'), { channel: 'user:only-a', hold: true });
  await a.add(both[0] as Connection, { channel: 'user:both', hold: true });
  await b.add(both[1] as Connection, { channel: 'user:both', hold: true });
  for (const n of nodes) n.handOver();
  for (const n of nodes) for (const c of n.all()) await n.remove(c);
  await Promise.all(nodes.map((n) => n.releaseHandedOver()));
  await Promise.all(nodes.map((n) => n.settled()));
  const offline = changes.filter((c) => c.includes(' offline:')).map((c) => c.split(':')[1]);
  assert.deepEqual(offline.sort(), ['both', 'only-a'], 'every user offline, once');
});

test('a connection that closes while its node registers its connections again (a peer claimed it) should be left offline, not online', async () => {
  const directory = new LeasedDirectory(new MemoryLeasedSets(), 't:', 'n1', 15_000);
  const changes: string[] = [];
  const live = recordingNode('n1', new SequentialConnectLog(directory, new MemoryHistory(10)), changes);
  // More connections than one round trip of the reinstatement registers; users u0 … u299.
  const all = Array.from({ length: 300 }, (_, i) => connection(`c${i}`, `u${i}`));
  for (const c of all) await live.add(c, { channel: `user:${c.userId}`, hold: true });
  // A peer's reaper claimed the node and announced every user offline.
  for (const c of all) await directory.disconnect(c.userId, c.id);
  await live.settled();
  changes.length = 0;

  // The reinstatement's first registrations are in flight (another Redis connection) when the
  // clients of c0 (in that round trip) and c299 (in a later one) close: their sockets died while
  // the node was stalled, and the node reads their closes now.
  let inFlight: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (inFlight = resolve));
  const reinstating = live.reinstate({
    connect: async (userId, connectionId) => {
      await gate;
      return directory.connect(userId, connectionId);
    },
    connectionsOf: (userId) => directory.connectionsOf(userId),
  });
  const closing = Promise.all([live.remove(all[0] as Connection), live.remove(all[299] as Connection)]);
  inFlight();
  await Promise.all([reinstating, closing]);
  await live.settled();

  for (const user of ['u0', 'u299']) {
    assert.deepEqual(await directory.connectionsOf(user), [], `${user}: no presence entry outlives the connection`);
    assert.equal(changes.filter((c) => c.endsWith(`:${user}`)).at(-1), `offline:${user}`, `${user}: last seen offline`);
  }
  assert.deepEqual(await directory.connectionsOf('u1'), ['c1']);
  assert.ok(changes.includes('online:u1'));
});

test('a user with two connections on a node a peer claimed should be announced online again, though the upkeep renewed one of them first', async () => {
  // Four presence shares (the default lease ratio): a refresh renews about a quarter of them.
  const directory = new LeasedDirectory(new MemoryLeasedSets(), 't:', 'n1', 15_000, 60_000);
  const changes: string[] = [];
  const live = recordingNode('n1', new SequentialConnectLog(directory, new MemoryHistory(10)), changes);
  // Users u0 … u39 with two connections each, on the node only; u40 also has one elsewhere.
  const users = Array.from({ length: 41 }, (_, i) => `u${i}`);
  for (const user of users) {
    await live.add(connection(`${user}a`, user), { channel: `user:${user}`, hold: true });
    await live.add(connection(`${user}b`, user), { channel: `user:${user}`, hold: false });
  }
  await directory.connect('u40', 'elsewhere');
  await directory.refresh(live.holdings([])); // the first refresh: every connection
  // A peer's reaper claimed the node: every connection here left presence.
  for (const c of live.all()) await directory.disconnect(c.userId, c.id);
  await live.settled();
  changes.length = 0;

  await directory.refresh(live.holdings([])); // the resumed node's upkeep renews one share first
  const renewedOne = [];
  for (const user of users) if ((await directory.connectionsOf(user)).length === 1) renewedOne.push(user);
  assert.ok(renewedOne.length > 0, 'some user had one of two connections renewed');
  assert.equal(await live.reinstate(directory), 40);
  await live.settled();
  assert.deepEqual(
    changes.sort(),
    users
      .slice(0, 40)
      .map((u) => `online:${u}`)
      .sort(),
    'once per user, not u40',
  );
});

test('a user who moves off a draining node and then leaves the peer before the hand-over ends should be announced offline exactly once', async () => {
  const { changes, node } = cluster();
  const [draining, peer] = [node('n1'), node('n2')];
  await draining.add(connection('c1', 'mover'), { channel: 'user:mover', hold: true });
  draining.handOver();
  for (const c of draining.all()) await draining.remove(c);
  const moved = connection('c2', 'mover');
  await peer.add(moved, { channel: 'user:mover', hold: true });
  await peer.remove(moved); // gone from the peer while n1 still holds its handed-over entry
  await Promise.all([draining.settled(), peer.settled()]);
  await draining.releaseHandedOver();
  await Promise.all([draining.settled(), peer.settled()]);
  const offline = changes.filter((c) => c.includes(' offline:'));
  assert.equal(offline.length, 1, changes.join(', '));
});

test('a user with two connections on a draining node of whom one reconnects elsewhere should see no presence change', async () => {
  const { changes, node } = cluster();
  const [draining, peer, third] = [node('n1'), node('n2'), node('n3')];
  await third.add(connection('c0', 'elsewhere'), { channel: 'user:elsewhere', hold: true });
  await draining.add(connection('c1', 'twice'), { channel: 'user:twice', hold: true });
  await draining.add(connection('c2', 'twice'), { channel: 'user:twice', hold: true });
  await draining.add(connection('c3', 'elsewhere'), { channel: 'user:elsewhere', hold: true });
  draining.handOver();
  for (const c of draining.all()) await draining.remove(c);
  await peer.add(connection('c4', 'twice'), { channel: 'user:twice', hold: true });
  await Promise.all([draining.settled(), peer.settled(), third.settled()]);
  await draining.releaseHandedOver();
  await Promise.all([draining.settled(), peer.settled(), third.settled()]);
  assert.deepEqual(changes, ['n3 online:elsewhere', 'n1 online:twice'], 'no offline, no second online');
});
