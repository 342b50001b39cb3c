import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FleetNotes } from './fleet.js';
import { Ledger } from './ledger.js';
import { Timelines } from './timeline.js';

const idOf = (i: number) => `t-c${i}`;

test("fleet notes should give the driver's ledger the figures of the fleet processes' clients", () => {
  const ledger = new Ledger();
  ledger.follow(idOf(0), 'creator:a');
  ledger.follow(idOf(1), 'creator:a');
  for (const id of ['p1', 'p2']) ledger.accept('creator:a', id);
  const notes = new FleetNotes(ledger, new Timelines(), idOf);
  notes.apply([
    { k: 'subscribed' },
    { k: 'subscribed' },
    { k: 'receive', id: 'p1', i: [0, 0] },
    { k: 'closed', code: 1001, by: 'client after reconnect' },
    { k: 'recovered', ms: 2500 },
  ]);
  assert.equal(ledger.missing(), 3);
  notes.apply([
    { k: 'receive', id: 'p2', i: [0] },
    { k: 'gap', i: 1 },
    { k: 'refetch', i: 1, ids: ['p1', 'p2'] },
    { k: 'closed', code: 1001, by: 'client after reconnect' },
  ]);
  const r = ledger.result('notes');
  assert.equal(notes.subscribed, 2);
  assert.deepEqual(
    [r.expected, r.delivered, r.duplicates, r.gaps, r.recoveries, r.recoveryP99Ms, r.closeCodes],
    [4, 4, 1, 1, 1, 2500, { 1001: 2 }],
  );
  assert.deepEqual(notes.closes(), { '1001 client after reconnect': 2 });
});

test("fleet notes should time a recovery from the processes' marks and the balancer's steps, whichever comes first", () => {
  const timelines = new Timelines();
  const notes = new FleetNotes(new Ledger(), timelines, idOf);
  notes.apply([
    { k: 'mark', i: 3, mark: 'close', at: 1000, detail: 1001 },
    { k: 'mark', i: 3, mark: 'lost', at: 1000 },
    { k: 'mark', i: 3, mark: 'attempt', at: 1200 },
  ]);
  notes.proxyStep(40_001, 'accepted', 1210); // before the process told its port
  notes.apply([{ k: 'port', i: 3, port: 40_001 }]);
  notes.proxyStep(40_001, 'forwarded', 1220);
  notes.apply([
    { k: 'mark', i: 3, mark: 'open', at: 1300 },
    { k: 'mark', i: 3, mark: 'welcome', at: 1350 },
    { k: 'mark', i: 3, mark: 'ack', at: 1400 },
  ]);
  const [recovery] = timelines.recoveries();
  assert.deepEqual(
    recovery && [
      recovery.client,
      recovery.toAttempt,
      recovery.toOpen,
      recovery.toWelcome,
      recovery.toAck,
      recovery.totalMs,
    ],
    [idOf(3), 200, 100, 50, 50, 400],
  );
  assert.match(timelines.render(idOf(3)), /\+210:accepted \+220:forwarded/);
});
