import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Directory } from './directory.js';
import type { Departures } from './departures.js';
import type { AppendFence, History } from './history.js';
import type { NodeRoster } from './roster.js';
import type { RouteLog } from './route-log.js';
import type { ConnectLog } from './connect-log.js';
import type { FenceTokens } from './fence-tokens.js';
import { EPOCH_PATTERN, FencedAppendError, HISTORY_DEDUPE_WINDOW, isLaterEpoch } from './history.js';

/**
 * The Directory contract, run against every implementation. `make(nodeId)` returns a directory
 * for that node over one fresh, shared store; `expire()` lets every lease run out.
 */
export function directoryContract(
  name: string,
  make: () => Promise<{
    forNode: (nodeId: string) => Directory;
    expire: () => Promise<void>;
    /** Loses everything the store held, as a Redis restart or FLUSHALL would. */
    wipe: () => Promise<void>;
  }>,
): void {
  const none = { channels: [], connections: [] };

  test(`${name}: directory should list the live nodes and forget one that left`, async () => {
    const { forNode } = await make();
    await forNode('b').refresh(none);
    await forNode('a').refresh(none);
    assert.deepEqual(await forNode('a').liveNodes(), ['a', 'b']);
    await forNode('a').leave(none);
    assert.deepEqual(await forNode('b').liveNodes(), ['b']);
  });

  test(`${name}: directory should map a channel to the nodes holding its subscribers`, async () => {
    const { forNode } = await make();
    await forNode('a').addChannel('a', 'creator:u1');
    await forNode('b').addChannel('b', 'creator:u1');
    await forNode('b').addChannel('b', 'post:p1');
    assert.deepEqual(await forNode('a').nodesFor('creator:u1'), ['a', 'b']);
    await forNode('a').removeChannel('a', 'creator:u1');
    assert.deepEqual(await forNode('a').nodesFor('creator:u1'), ['b']);
    assert.deepEqual(await forNode('a').nodesFor('post:p1'), ['b']);
    assert.deepEqual(await forNode('a').nodesFor('post:none'), []);
  });

  test(`${name}: directory should tell when a user comes online and goes offline`, async () => {
    const { forNode } = await make();
    const a = forNode('a');
    assert.equal(await a.connect('u1', 'c1'), true);
    assert.equal(await a.connect('u1', 'c2'), false);
    assert.deepEqual(await a.connectionsOf('u1'), ['c1', 'c2']);
    assert.equal(await a.disconnect('u1', 'c1'), false);
    assert.equal(await a.disconnect('u1', 'c2'), true);
    assert.deepEqual(await a.connectionsOf('u1'), []);
  });

  test(`${name}: directory should forget everything of a node whose heartbeat stopped, and refill on refresh`, async () => {
    const { forNode, expire } = await make();
    const holdings = { channels: ['creator:u9'], connections: [{ userId: 'u9', connectionId: 'c9' }] };
    await forNode('dead').refresh(holdings);
    assert.deepEqual(await forNode('x').nodesFor('creator:u9'), ['dead']);
    await expire();
    assert.deepEqual(await forNode('x').liveNodes(), []);
    assert.deepEqual(await forNode('x').nodesFor('creator:u9'), []);
    assert.deepEqual(await forNode('x').connectionsOf('u9'), []);
    // A live node renews what it holds, e.g. after Redis restarted empty.
    await forNode('alive').refresh({ ...holdings, connections: [{ userId: 'u9', connectionId: 'c10' }] });
    assert.deepEqual(await forNode('x').nodesFor('creator:u9'), ['alive']);
    assert.deepEqual(await forNode('x').connectionsOf('u9'), ['c10']);
  });

  test(`${name}: directory lookup should call the registry incomplete for one lease after its store lost its data`, async () => {
    const { forNode, expire, wipe } = await make();
    const holdings = { channels: ['creator:u1'], connections: [] };
    const a = forNode('a');
    await a.refresh(holdings);
    const fresh = await a.lookup(['creator:u1', 'post:none']);
    assert.deepEqual(
      [...fresh.nodes],
      [
        ['creator:u1', ['a']],
        ['post:none', []],
      ],
    );
    assert.equal(fresh.complete, false, 'other nodes may not have renewed yet');
    await expire();
    await a.refresh(holdings);
    assert.equal((await a.lookup(['creator:u1'])).complete, true);
    const since = await a.dataSince();
    assert.ok(since !== undefined && since <= Date.now());
    await wipe();
    assert.equal(await a.dataSince(), undefined, 'the data is gone: nothing is known since when');
    const lost = await a.lookup(['creator:u1']);
    assert.deepEqual([lost.complete, lost.nodes.get('creator:u1')], [false, []]);
    await a.refresh(holdings);
    const refilled = await a.lookup(['creator:u1']);
    assert.deepEqual([refilled.complete, refilled.nodes.get('creator:u1')], [false, ['a']]);
  });
}

/**
 * The History contract. `make(maxLength)` returns a fresh history keeping about `maxLength`
 * entries per channel, and `lose(channel)` drops a channel's history as a Redis restart would.
 */
export function historyContract(
  name: string,
  make: (maxLength: number) => Promise<{ history: History; lose: (channel: string) => Promise<void> }>,
): void {
  test(`${name}: history should replay everything after a position, in order`, async () => {
    const { history } = await make(1000);
    const start = await history.position('creator:u1');
    assert.equal(start.offset, '0');
    assert.match(start.epoch, EPOCH_PATTERN);
    const appended = [];
    for (let i = 0; i < 5; i++) appended.push(await history.append('creator:u1', `e${i}`));
    assert.ok(
      appended.every((p) => p.epoch === start.epoch),
      'one epoch',
    );
    const fromStart = await history.since('creator:u1', start, 100);
    assert.equal(fromStart.recovered, true);
    assert.deepEqual(
      fromStart.entries.map((e) => e.payload),
      ['e0', 'e1', 'e2', 'e3', 'e4'],
    );
    assert.deepEqual(
      fromStart.entries.map((e) => e.offset),
      appended.map((p) => p.offset),
    );
    assert.deepEqual(
      appended.map((p) => p.offset),
      ['1', '2', '3', '4', '5'],
      'offsets are contiguous',
    );
    const fromMiddle = await history.since('creator:u1', appended[2] ?? start, 100);
    assert.deepEqual(
      fromMiddle.entries.map((e) => e.payload),
      ['e3', 'e4'],
    );
    assert.deepEqual(fromMiddle.position, appended[4]);
    const upToDate = await history.since('creator:u1', appended[4] ?? start, 100);
    assert.deepEqual([upToDate.recovered, upToDate.entries.length], [true, 0]);
    assert.deepEqual(await history.position('creator:u1'), appended[4]);
  });

  test(`${name}: history should append many entries at once, each channel's in the given order`, async () => {
    const { history } = await make(1000);
    await history.append('post:m1', 'before');
    const positions = await history.appendMany([
      { channel: 'post:m1', payload: 'a1' },
      { channel: 'post:m2', payload: 'b1' },
      { channel: 'post:m1', payload: 'a2' },
    ]);
    assert.deepEqual(
      positions.map((p) => p.offset),
      ['2', '1', '3'],
    );
    const replay = await history.since('post:m1', { offset: '1', epoch: positions[0]?.epoch ?? '' }, 10);
    assert.deepEqual(
      replay.entries.map((e) => e.payload),
      ['a1', 'a2'],
    );
    assert.deepEqual(await history.appendMany([]), []);
  });

  test(`${name}: history should keep an event appended again (same id) at its first offset, stored once`, async () => {
    const { history, lose } = await make(1000);
    const first = await history.appendMany([
      { channel: 'creator:d1', payload: 'x1', id: 'e1' },
      { channel: 'creator:d1', payload: 'x2', id: 'e2' },
    ]);
    // A node that took over a partition routes what the dead one routed but did not commit.
    const again = await history.appendMany([
      { channel: 'creator:d1', payload: 'x2', id: 'e2' },
      { channel: 'creator:d1', payload: 'x3', id: 'e3' },
      { channel: 'post:d2', payload: 'y1', id: 'e1' },
      { channel: 'creator:d1', payload: 'x1', id: 'e1' },
      { channel: 'creator:d1', payload: 'x4' },
      { channel: 'creator:d1', payload: 'x4' },
    ]);
    assert.deepEqual(
      [...first, ...again].map((p) => p.offset),
      ['1', '2', '2', '3', '1', '1', '4', '5'],
      'ids are per channel; entries without one are never taken for each other',
    );
    assert.ok(again.every((p) => p.epoch === first[0]?.epoch || p === again[2]));
    const replay = await history.since('creator:d1', { offset: '0', epoch: first[0]?.epoch ?? '' }, 10);
    assert.deepEqual(
      replay.entries.map((e) => e.payload),
      ['x1', 'x2', 'x3', 'x4', 'x4'],
    );
    // Within the window of the last HISTORY_DEDUPE_WINDOW offsets, and not before it.
    const many = Array.from({ length: HISTORY_DEDUPE_WINDOW }, (_, i) => ({
      channel: 'creator:d1',
      payload: `z${i}`,
      id: `z${i}`,
    }));
    const appended = await history.appendMany(many);
    const top = Number(appended.at(-1)?.offset);
    const zero = many[0];
    assert.ok(zero);
    const [oldest, outside] = await history.appendMany([zero, { channel: 'creator:d1', payload: 'x3', id: 'e3' }]);
    assert.deepEqual([oldest?.offset, outside?.offset], [String(top - HISTORY_DEDUPE_WINDOW + 1), String(top + 1)]);
    // A new epoch starts with no ids: everything is appended again.
    await lose('creator:d1');
    const lost = await history.appendMany([{ channel: 'creator:d1', payload: 'x1', id: 'e1' }]);
    assert.deepEqual(
      lost.map((p) => p.offset),
      ['1'],
    );
  });

  test(`${name}: history should refuse a channel's append fenced by a lower token of the same source, and only that channel's`, async () => {
    const { history, lose } = await make(1000);
    const p0 = (token: number): AppendFence => ({ source: 'posts/0', token });
    await history.appendMany([{ channel: 'creator:f1', payload: 'n1', id: 'e1' }], p0(7));
    // The stale owner (token 5) of partition 0: refused for creator:f1, which saw token 7 there;
    // post:f2 never saw that partition, so its entry is appended, and then the call throws.
    const stale = history.appendMany(
      [
        { channel: 'creator:f1', payload: 'o2', id: 'e2' },
        { channel: 'post:f2', payload: 'o2', id: 'e2' },
      ],
      p0(5),
    );
    await assert.rejects(
      stale,
      (err: unknown) => err instanceof FencedAppendError && err.channels.join() === 'creator:f1',
    );
    assert.deepEqual((await history.position('creator:f1')).offset, '1', 'nothing of the refused channel appended');
    assert.deepEqual((await history.position('post:f2')).offset, '1');
    // Another partition, no fence and an equal or higher token are accepted.
    const accepted = await history.appendMany([{ channel: 'creator:f1', payload: 'x', id: 'e3' }], {
      source: 'posts/1',
      token: 1,
    });
    const unfenced = await history.appendMany([{ channel: 'creator:f1', payload: 'y', id: 'e4' }]);
    const same = await history.appendMany([{ channel: 'creator:f1', payload: 'z', id: 'e5' }], p0(7));
    const higher = await history.appendMany([{ channel: 'creator:f1', payload: 'w', id: 'e6' }], p0(9));
    assert.deepEqual(
      [accepted, unfenced, same, higher].map((p) => p[0]?.offset),
      ['2', '3', '4', '5'],
    );
    // The highest token is kept: 7 is now stale too.
    await assert.rejects(
      history.appendMany([{ channel: 'creator:f1', payload: 'v', id: 'e7' }], p0(7)),
      FencedAppendError,
    );
    // The fence lives and dies with the channel's history.
    await lose('creator:f1');
    const fresh = await history.appendMany([{ channel: 'creator:f1', payload: 'v', id: 'e7' }], p0(7));
    assert.equal(fresh[0]?.offset, '1');
  });

  test(`${name}: history should store an event given twice in one append once, both at its offset`, async () => {
    const { history } = await make(1000);
    const positions = await history.appendMany([
      { channel: 'creator:t1', payload: 'x1', id: 'e1' },
      { channel: 'creator:t1', payload: 'x2', id: 'e2' },
      { channel: 'creator:t1', payload: 'x1', id: 'e1' },
    ]);
    assert.deepEqual(
      positions.map((p) => p.offset),
      ['1', '2', '1'],
    );
    const replay = await history.since('creator:t1', { offset: '0', epoch: positions[0]?.epoch ?? '' }, 10);
    assert.deepEqual(
      replay.entries.map((e) => e.payload),
      ['x1', 'x2'],
    );
  });

  test(`${name}: history should refuse to recover across an epoch change`, async () => {
    const { history, lose } = await make(1000);
    const first = await history.append('post:p1', 'a');
    await lose('post:p1');
    const next = await history.append('post:p1', 'b');
    assert.notEqual(next.epoch, first.epoch);
    assert.ok(isLaterEpoch(next.epoch, first.epoch), 'a new epoch compares later');
    assert.equal(next.offset, '1', 'a new epoch starts over');
    const attempt = await history.since('post:p1', first, 100);
    assert.equal(attempt.recovered, false);
    assert.equal(attempt.position.epoch, next.epoch);
  });

  test(`${name}: history should give a channel without history a real epoch that resumes with every event since`, async () => {
    const { history } = await make(1000);
    const unknown = await history.since('creator:new', { offset: '0', epoch: '000000000000000000000000' }, 100);
    assert.equal(unknown.recovered, false);
    assert.match(unknown.position.epoch, EPOCH_PATTERN);
    assert.equal(unknown.position.offset, '0');
    await history.append('creator:new', 'first');
    const resumed = await history.since('creator:new', unknown.position, 100);
    assert.equal(resumed.recovered, true);
    assert.deepEqual(
      resumed.entries.map((e) => e.payload),
      ['first'],
    );
    const ahead = await history.since('creator:new', { offset: '7', epoch: unknown.position.epoch }, 100);
    assert.equal(ahead.recovered, false, 'an offset past the top is not trusted');
  });

  test(`${name}: history should refuse to recover what was trimmed or what exceeds the limit`, async () => {
    const { history } = await make(10);
    const first = await history.append('post:p2', 'x0');
    for (let i = 1; i < 300; i++) await history.append('post:p2', `x${i}`);
    assert.equal((await history.since('post:p2', first, 1000)).recovered, false, 'trimmed');
    const late = await history.position('post:p2');
    await history.append('post:p2', 'y1');
    await history.append('post:p2', 'y2');
    assert.equal((await history.since('post:p2', late, 1)).recovered, false, 'over the limit');
    assert.equal((await history.since('post:p2', late, 2)).recovered, true);
  });
}

/** The Departures contract. `make()` returns fresh departures over an empty store. */
export function departuresContract(name: string, make: () => Promise<Departures>): void {
  test(`${name}: departures should remember when a user last left a room, per room and user`, async () => {
    const departures = await make();
    assert.equal(await departures.leftAt('r1', 'u1'), undefined);
    await departures.markLeft('r1', 'u1', 1_700_000_000_500);
    assert.equal(await departures.leftAt('r1', 'u1'), 1_700_000_000_500);
    assert.equal(await departures.leftAt('r1', 'u2'), undefined, 'another user');
    assert.equal(await departures.leftAt('r2', 'u1'), undefined, 'another room');
  });

  test(`${name}: departures should keep the later mark when an earlier one arrives after it`, async () => {
    const departures = await make();
    await departures.markLeft('r1', 'u1', 2_000);
    await departures.markLeft('r1', 'u1', 1_000); // a redelivered, older event
    assert.equal(await departures.leftAt('r1', 'u1'), 2_000);
    await departures.markLeft('r1', 'u1', 3_000); // left again after a rejoin
    assert.equal(await departures.leftAt('r1', 'u1'), 3_000);
  });
}

/**
 * The NodeRoster contract. `make()` returns a roster over a fresh store whose leases last one
 * `expire()`; `graced()` is one over the same store whose claims wait one lease more (its grace).
 */
export function rosterContract(
  name: string,
  make: () => Promise<{ roster: () => NodeRoster; graced: () => NodeRoster; expire: () => Promise<void> }>,
): void {
  test(`${name}: roster should not claim a node that renews within the grace after its lease ran out (a live node stalled), and claim it once the grace is spent`, async () => {
    const { graced, expire } = await make();
    const [late, peer] = [graced(), graced()];
    await late.renew('late', [{ userId: 'u1', connectionId: 'c1' }]);
    await expire();
    assert.deepEqual(await peer.claimDead(), [], 'its lease ran out, its grace did not');
    await late.renew('late');
    await expire();
    assert.deepEqual(await peer.claimDead(), [], 'it renewed late, in its grace: alive, its connections untouched');
    await expire();
    assert.deepEqual(await peer.claimDead(), [{ nodeId: 'late', connections: [{ userId: 'u1', connectionId: 'c1' }] }]);
  });

  test(`${name}: roster renewal should say whether the node was still listed: not at its first renewal, nor after a peer claimed it while it stalled`, async () => {
    const { roster, expire } = await make();
    const [stalled, peer] = [roster(), roster()];
    assert.equal(await stalled.renew('n1', [{ userId: 'u1', connectionId: 'c1' }]), false, 'a first renewal');
    assert.equal(await stalled.renew('n1'), true);
    await expire();
    await peer.renew('n2');
    assert.deepEqual(await peer.claimDead(), [{ nodeId: 'n1', connections: [{ userId: 'u1', connectionId: 'c1' }] }]);
    assert.equal(await stalled.renew('n1'), false, 'claimed meanwhile: its entries are gone');
    assert.equal(await stalled.renew('n1'), true);
  });

  test(`${name}: roster should mark a claimed node as being reaped until its claimer says reaped`, async () => {
    const { roster, expire } = await make();
    const [dead, peer] = [roster(), roster()];
    await dead.renew('n1', [{ userId: 'u1', connectionId: 'c1' }]);
    assert.equal(await peer.reaping('n1'), false, 'alive');
    await expire();
    await peer.renew('n2');
    assert.equal((await peer.claimDead()).length, 1);
    assert.equal(await dead.reaping('n1'), true, 'claimed, being announced');
    assert.equal(await dead.reaping('n2'), false);
    await peer.reaped('n1');
    assert.equal(await dead.reaping('n1'), false);
  });

  test(`${name}: roster should hand a restarted node its previous incarnation's connections, once`, async () => {
    const { roster } = await make();
    const r = roster();
    assert.equal(await r.claimPrevious('n1'), undefined, 'a first start finds nothing');
    await r.renew('n1', [{ userId: 'u1', connectionId: 'c1' }]);
    await r.serve('n1', { userId: 'u2', connectionId: 'c2' });
    assert.deepEqual(await r.claimPrevious('n1'), {
      nodeId: 'n1',
      connections: [
        { userId: 'u1', connectionId: 'c1' },
        { userId: 'u2', connectionId: 'c2' },
      ],
    });
    assert.equal(await r.claimPrevious('n1'), undefined, 'claimed once');
    assert.deepEqual(await r.claimDead(), [], 'and forgotten');
  });

  test(`${name}: roster should hand a node whose lease ran out, with its connections, to exactly one claimer`, async () => {
    const { roster, expire } = await make();
    const [x, y, z] = [roster(), roster(), roster()];
    await x.renew('dead', [{ userId: 'u1', connectionId: 'c1' }]);
    await x.serve('dead', { userId: 'u2', connectionId: 'c2' }); // connected after the last renewal
    await y.renew('alive', [{ userId: 'u3', connectionId: 'c3' }]);
    assert.deepEqual(await z.claimDead(), [], 'nobody is dead yet');
    await expire();
    await y.renew('alive', [{ userId: 'u3', connectionId: 'c3' }]);
    const claims = await Promise.all([y.claimDead(), z.claimDead()]);
    assert.deepEqual(
      claims.flat(),
      [
        {
          nodeId: 'dead',
          connections: [
            { userId: 'u1', connectionId: 'c1' },
            { userId: 'u2', connectionId: 'c2' },
          ],
        },
      ],
      'one claimer gets the dead node, the other nothing',
    );
    assert.deepEqual(await z.claimDead(), [], 'a claimed node is forgotten');
  });

  test(`${name}: roster should replace a node's connections on renewal and forget a node that left`, async () => {
    const { roster, expire } = await make();
    const r = roster();
    await r.renew('n1', [{ userId: 'u1', connectionId: 'c1' }]);
    await r.renew('n1', [{ userId: 'u2', connectionId: 'c2' }]);
    await r.renew('n2', [{ userId: 'u3', connectionId: 'c3' }]);
    await r.leave('n2');
    await expire();
    assert.deepEqual(await r.claimDead(), [{ nodeId: 'n1', connections: [{ userId: 'u2', connectionId: 'c2' }] }]);
  });

  test(`${name}: roster should keep a node's connections through renewals without a list, as served and released`, async () => {
    const { roster, expire } = await make();
    const r = roster();
    await r.renew('n1', [{ userId: 'u1', connectionId: 'c1' }]);
    await r.serve('n1', { userId: 'u2', connectionId: 'c2' });
    await r.serve('n1', { userId: 'u3', connectionId: 'c3' });
    await r.release('n1', 'c1');
    await r.renew('n1');
    await expire();
    assert.deepEqual(await r.claimDead(), [
      {
        nodeId: 'n1',
        connections: [
          { userId: 'u2', connectionId: 'c2' },
          { userId: 'u3', connectionId: 'c3' },
        ],
      },
    ]);
  });

  test(`${name}: roster should renew a node that serves 20,000 connections (one process's limit)`, async () => {
    const { roster } = await make();
    const r = roster();
    const connections = Array.from({ length: 20_000 }, (_, i) => ({ userId: `u${i % 7}`, connectionId: `c${i}` }));
    await r.renew('big', connections);
    const previous = await r.claimPrevious('big');
    const ids = (list: readonly { connectionId: string }[]) => list.map((c) => c.connectionId).sort();
    assert.deepEqual(ids(previous?.connections ?? []), ids(connections));
  });
}

/**
 * The RouteLog contract. `make()` returns a route log over a fresh store with the History and the
 * Directory (of node `forNode`) that read and write the same store; `expire()` lets one lease pass.
 */
export function routeLogContract(
  name: string,
  make: () => Promise<{
    routes: RouteLog;
    history: History;
    forNode: (nodeId: string) => Directory;
    expire: () => Promise<void>;
  }>,
): void {
  test(`${name}: route log should append each channel's entries in order and read back its holders`, async () => {
    const { routes, history, forNode } = await make();
    await history.append('creator:u1', 'before');
    await forNode('b').addChannel('b', 'creator:u1');
    await forNode('a').addChannel('a', 'creator:u1');
    const batch = await routes.appendAndLookup([
      { channel: 'creator:u1', payload: 'a1' },
      { channel: 'post:p2', payload: 'b1' },
      { channel: 'creator:u1', payload: 'a2' },
    ]);
    assert.deepEqual(
      batch.positions.map((p) => p.offset),
      ['2', '1', '3'],
    );
    assert.equal(batch.positions[0]?.epoch, batch.positions[2]?.epoch);
    assert.deepEqual(
      [...batch.nodes],
      [
        ['creator:u1', ['a', 'b']],
        ['post:p2', []],
      ],
    );
    // What it appended is the history's: replayable, and the position moved on.
    const replay = await history.since('creator:u1', { offset: '1', epoch: batch.positions[0]?.epoch ?? '' }, 10);
    assert.deepEqual(
      replay.entries.map((e) => [e.offset, e.payload]),
      [
        ['2', 'a1'],
        ['3', 'a2'],
      ],
    );
    assert.deepEqual(await history.position('post:p2'), batch.positions[1]);
    assert.deepEqual((await routes.appendAndLookup([])).positions, []);
  });

  test(`${name}: route log should keep an event routed again (same id) at its first offset, stored once`, async () => {
    const { routes, history } = await make();
    const first = await routes.appendAndLookup([
      { channel: 'creator:r1', payload: 'a1', id: 'e1' },
      { channel: 'user:r2', payload: 'a1', id: 'e1' },
      { channel: 'creator:r1', payload: 'a2', id: 'e2' },
    ]);
    const again = await routes.appendAndLookup([
      { channel: 'creator:r1', payload: 'a2', id: 'e2' },
      { channel: 'user:r2', payload: 'a1', id: 'e1' },
      { channel: 'creator:r1', payload: 'a3', id: 'e3' },
      { channel: 'user:r2', payload: 'b2', id: 'e4' },
    ]);
    assert.deepEqual(
      [...first.positions, ...again.positions].map((p) => p.offset),
      ['1', '1', '2', '2', '1', '3', '2'],
    );
    const replay = await history.since('creator:r1', { offset: '0', epoch: first.positions[0]?.epoch ?? '' }, 10);
    assert.deepEqual(
      replay.entries.map((e) => e.payload),
      ['a1', 'a2', 'a3'],
    );
  });

  test(`${name}: route log should refuse a batch's channels fenced by a lower token of the same source, appending the others`, async () => {
    const { routes, history } = await make();
    const p0 = (token: number): AppendFence => ({ source: 'posts/0', token });
    const first = await routes.appendAndLookup([{ channel: 'creator:g1', payload: 'n1', id: 'e1' }], p0(7));
    assert.deepEqual(
      first.positions.map((p) => p.offset),
      ['1'],
    );
    const stale = routes.appendAndLookup(
      [
        { channel: 'post:g2', payload: 'o1', id: 'e2' },
        { channel: 'creator:g1', payload: 'o1', id: 'e2' },
      ],
      p0(6),
    );
    await assert.rejects(
      stale,
      (err: unknown) => err instanceof FencedAppendError && err.channels.join() === 'creator:g1',
    );
    assert.equal((await history.position('creator:g1')).offset, '1');
    assert.equal((await history.position('post:g2')).offset, '1');
    const other = await routes.appendAndLookup([{ channel: 'creator:g1', payload: 'x', id: 'e3' }], {
      source: 'posts/1',
      token: 2,
    });
    const higher = await routes.appendAndLookup([{ channel: 'creator:g1', payload: 'y', id: 'e4' }], p0(8));
    assert.deepEqual(
      [...other.positions, ...higher.positions].map((p) => p.offset),
      ['2', '3'],
    );
    await assert.rejects(routes.appendAndLookup([{ channel: 'creator:g1', payload: 'z' }], p0(7)), FencedAppendError);
  });

  test(`${name}: route log should keep every channel's order and holders in a batch of many channels`, async () => {
    const { routes, history, forNode } = await make();
    // 60 channels, channel k with k % 4 + 1 entries, interleaved; every third one held by node a,
    // every fifth by node b. Enough to span several script calls of any adapter that splits them.
    const channels = Array.from({ length: 60 }, (_, k) => `post:m${k}`);
    await history.append('post:m7', 'before');
    for (const [k, channel] of channels.entries()) {
      if (k % 3 === 0) await forNode('a').addChannel('a', channel);
      if (k % 5 === 0) await forNode('b').addChannel('b', channel);
    }
    const entries: { channel: string; payload: string }[] = [];
    for (let round = 0; round < 4; round++)
      for (const [k, channel] of channels.entries())
        if (round <= k % 4) entries.push({ channel, payload: `${channel}#${round}` });
    const batch = await routes.appendAndLookup(entries);
    const expected = entries.map(({ channel, payload }) => {
      const round = Number(payload.split('#')[1]);
      return String(round + 1 + (channel === 'post:m7' ? 1 : 0));
    });
    assert.deepEqual(
      batch.positions.map((p) => p.offset),
      expected,
    );
    for (const [k, channel] of channels.entries()) {
      const holders = [...(k % 3 === 0 ? ['a'] : []), ...(k % 5 === 0 ? ['b'] : [])];
      assert.deepEqual(batch.nodes.get(channel), holders, channel);
    }
    const replay = await history.since('post:m7', { offset: '1', epoch: batch.positions[7]?.epoch ?? '' }, 10);
    assert.deepEqual(
      replay.entries.map((e) => e.payload),
      ['post:m7#0', 'post:m7#1', 'post:m7#2', 'post:m7#3'],
    );
  });

  test(`${name}: route log should call the registry complete only once it was renewed a lease ago`, async () => {
    const { routes, forNode, expire } = await make();
    const entries = [{ channel: 'creator:u3', payload: 'x' }];
    assert.equal((await routes.appendAndLookup(entries)).complete, false, 'no marker: the store may have lost data');
    await forNode('a').refresh({ channels: ['creator:u3'], connections: [] });
    await expire();
    await forNode('a').refresh({ channels: ['creator:u3'], connections: [] });
    const batch = await routes.appendAndLookup(entries);
    assert.deepEqual([batch.complete, batch.nodes.get('creator:u3')], [true, ['a']]);
  });
}

/**
 * The ConnectLog contract. `make()` returns a connect log over a fresh store with the History, the
 * Directory (of node `forNode`) and the NodeRoster that read and write the same store.
 */
export function connectLogContract(
  name: string,
  make: () => Promise<{
    connects: ConnectLog;
    history: History;
    forNode: (nodeId: string) => Directory;
    roster: NodeRoster;
  }>,
): void {
  test(`${name}: connect log should register a connection and its own channel, then read the channel's position`, async () => {
    const { connects, history, forNode, roster } = await make();
    const before = await history.append('user:u1', 'before');
    const opened = await connects.open({
      nodeId: 'a',
      userId: 'u1',
      connectionId: 'c1',
      channel: 'user:u1',
      holdChannel: true,
    });
    assert.deepEqual(opened, { first: true, position: before });
    assert.deepEqual(await forNode('x').connectionsOf('u1'), ['c1']);
    assert.deepEqual(await forNode('x').nodesFor('user:u1'), ['a']);
    // A second connection of the user, on a node that already holds the channel: no holder added.
    const again = await connects.open({
      nodeId: 'b',
      userId: 'u1',
      connectionId: 'c2',
      channel: 'user:u1',
      holdChannel: false,
    });
    assert.deepEqual(again, { first: false, position: before });
    assert.deepEqual(await forNode('x').connectionsOf('u1'), ['c1', 'c2']);
    assert.deepEqual(await forNode('x').nodesFor('user:u1'), ['a']);
    // The roster lists each connection with its node, so a crash of the node is announced.
    assert.deepEqual(await roster.claimPrevious('a'), {
      nodeId: 'a',
      connections: [{ userId: 'u1', connectionId: 'c1' }],
    });
    assert.deepEqual(await roster.claimPrevious('b'), {
      nodeId: 'b',
      connections: [{ userId: 'u1', connectionId: 'c2' }],
    });
    // What follows the position read is the next offset of the same epoch.
    assert.deepEqual(await history.append('user:u1', 'after'), { offset: '2', epoch: before.epoch });
  });

  test(`${name}: connect log should release a closed connection from the roster and presence, and tell the last one`, async () => {
    const { connects, forNode, roster } = await make();
    const opening = { nodeId: 'a', userId: 'u3', channel: 'user:u3', holdChannel: true };
    await connects.open({ ...opening, connectionId: 'c1' });
    await connects.open({ ...opening, connectionId: 'c2', holdChannel: false });
    assert.equal(await connects.close({ nodeId: 'a', userId: 'u3', connectionId: 'c1' }), false, 'c2 is still live');
    assert.deepEqual(await forNode('x').connectionsOf('u3'), ['c2']);
    assert.equal(
      await connects.close({ nodeId: 'a', userId: 'u3', connectionId: 'c2' }),
      true,
      'the user went offline',
    );
    assert.deepEqual(await forNode('x').connectionsOf('u3'), []);
    // A second close of the same connection changes nothing.
    assert.equal(await connects.close({ nodeId: 'a', userId: 'u3', connectionId: 'c2' }), true);
    // The roster no longer lists them: a crash of the node from now on announces neither.
    await roster.renew('a');
    assert.deepEqual(await roster.claimPrevious('a'), { nodeId: 'a', connections: [] });
    // The own channel's holder is not the connect log's to drop (the hub does, with the subscription).
    assert.deepEqual(await forNode('x').nodesFor('user:u3'), ['a']);
  });

  test(`${name}: connect log should give an own channel without history a real epoch that resumes with every event since`, async () => {
    const { connects, history } = await make();
    const { first, position } = await connects.open({
      nodeId: 'a',
      userId: 'u2',
      connectionId: 'c1',
      channel: 'user:u2',
      holdChannel: true,
    });
    assert.equal(first, true);
    assert.equal(position.offset, '0');
    assert.match(position.epoch, EPOCH_PATTERN);
    assert.deepEqual(await history.append('user:u2', 'first'), { offset: '1', epoch: position.epoch });
    const replay = await history.since('user:u2', position, 10);
    assert.deepEqual(
      replay.entries.map((e) => e.payload),
      ['first'],
    );
  });
}

/**
 * The FenceTokens contract. `make()` returns two issuers over one fresh store (two processes) and
 * `lose(scope)` drops the scope's last token as an expiry or a restart of the store would.
 */
export function fenceTokensContract(
  name: string,
  make: () => Promise<{ issuers: [FenceTokens, FenceTokens]; lose: (scope: string) => Promise<void> }>,
): void {
  test(`${name}: fence tokens should grow with every token of a scope, whichever issuer gave it, and even after the store lost the last one`, async () => {
    const { issuers, lose } = await make();
    const [a, b] = issuers;
    const tokens: number[] = [];
    for (let i = 0; i < 20; i++) tokens.push(await (i % 2 === 0 ? a : b).next('group-1'));
    await lose('group-1');
    tokens.push(await a.next('group-1'));
    for (const [i, token] of tokens.entries()) {
      assert.ok(Number.isSafeInteger(token) && token >= 0, `token ${token}`);
      if (i > 0) assert.ok(token > (tokens[i - 1] ?? Infinity), `token ${i} grows: ${tokens[i - 1]} then ${token}`);
    }
    // Another scope has tokens of its own (they only have to grow per scope).
    assert.ok(Number.isSafeInteger(await b.next('group-2')));
  });
}
