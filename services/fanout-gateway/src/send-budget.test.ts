import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SendBudget } from './send-budget.js';
import type { SendQueue } from './send-budget.js';

/** A queue whose bytes the test sets; `evict` empties it and records the eviction. */
function queue(name: string, evicted: string[]): SendQueue & { bytes: number } {
  const q = {
    bytes: 0,
    queuedBytes: () => q.bytes,
    evict: () => {
      q.bytes = 0;
      evicted.push(name);
    },
  };
  return q;
}

/** A budget on a clock the test moves (`clock.ms`), polling every ms, recording its waits. */
function budgetOnClock(options: { limitBytes: number; stallMs: number; onEvicted?: () => void }) {
  const clock = { ms: 0 };
  const waits: number[] = [];
  const budget = new SendBudget({ ...options, pollMs: 1, now: () => clock.ms, onWaited: (ms) => waits.push(ms) });
  return { budget, clock, waits };
}

/** Waits (bounded) for `promise`, yielding to timers meanwhile. */
async function settles(promise: Promise<void> | undefined, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within 5 s`)), 5000);
  });
  await Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

test('send budget should count what queues report: up on queue, down on drain, and never below zero', () => {
  const budget = new SendBudget({ limitBytes: 100, stallMs: 1000 });
  const a = queue('a', []);
  const b = queue('b', []);
  a.bytes = 40;
  budget.update(a);
  b.bytes = 30;
  budget.update(b);
  assert.equal(budget.queuedBytes, 70);
  assert.equal(budget.queueCount, 2);
  a.bytes = 10; // part of a drained
  budget.update(a);
  assert.equal(budget.queuedBytes, 40);
  b.bytes = 0; // b drained completely: it is no longer counted
  budget.update(b);
  budget.update(b);
  assert.equal(budget.queuedBytes, 10);
  assert.equal(budget.queueCount, 1);
  a.bytes = -5; // a transport that misreports cannot drive the total below zero
  budget.update(a);
  assert.equal(budget.queuedBytes, 0);
  assert.equal(budget.queueCount, 0);
});

test('send budget should let a closed queue release its bytes, once', () => {
  const budget = new SendBudget({ limitBytes: 100, stallMs: 1000 });
  const a = queue('a', []);
  const b = queue('b', []);
  a.bytes = 60;
  b.bytes = 70;
  budget.update(a);
  budget.update(b);
  budget.release(a);
  budget.release(a);
  assert.equal(budget.queuedBytes, 70);
  budget.release(queue('never counted', []));
  assert.equal(budget.queuedBytes, 70);
  budget.release(b);
  assert.equal(budget.queuedBytes, 0);
});

test('send budget should admit at once within the limit, and read the queues again before it refuses', () => {
  const budget = new SendBudget({ limitBytes: 100, stallMs: 1000 });
  const a = queue('a', []);
  a.bytes = 100;
  budget.update(a);
  assert.equal(budget.admit(), undefined, 'at the limit is within it');
  a.bytes = 500;
  budget.update(a);
  a.bytes = 0; // the kernel took it since it last reported: not an event, but read at admit
  assert.equal(budget.admit(), undefined);
  assert.equal(budget.queuedBytes, 0);
});

test('send budget should count what transports hold back until the end of the tick before it admits', () => {
  const a = queue('a', []);
  // A sink whose corked bytes are only counted once the tick's writes are handed over.
  const budget = new SendBudget({
    limitBytes: 100,
    stallMs: 1000,
    beforeCount: () => {
      a.bytes = 500;
      budget.update(a);
    },
  });
  const waiting = budget.admit();
  assert.ok(waiting, 'the bytes queued earlier in the tick hold the next batch back');
  budget.release(a);
});

test('send budget should hold a wait until the queues drained under the limit, calling keepAlive meanwhile', async () => {
  const { budget, clock: c, waits } = budgetOnClock({ limitBytes: 100, stallMs: 60_000 });
  const evicted: string[] = [];
  const a = queue('a', evicted);
  a.bytes = 150;
  budget.update(a);
  let alive = 0;
  let done = false;
  const waiting = budget.admit(() => (alive += 1));
  assert.ok(waiting, 'over the limit: the caller waits');
  void waiting.then(() => (done = true));
  while (alive < 3) await new Promise((r) => setTimeout(r, 1));
  assert.equal(done, false, 'still over the limit');
  c.ms = 250;
  a.bytes = 90; // drained under the limit without reporting it
  await settles(waiting, 'the wait ending once drained');
  assert.deepEqual(waits, [250]);
  assert.deepEqual(evicted, [], 'a queue that drains is never evicted');
});

test('send budget should evict every queue that stopped draining once the total stopped falling for its bound, and spare those that read', async () => {
  const evicted: string[] = [];
  let evictions = 0;
  const { budget, clock: c } = budgetOnClock({ limitBytes: 100, stallMs: 2000, onEvicted: () => (evictions += 1) });
  const stalled = queue('stalled', evicted);
  const alsoStalled = queue('also stalled', evicted);
  const reading = queue('reading', evicted);
  stalled.bytes = 120;
  alsoStalled.bytes = 60;
  reading.bytes = 30;
  for (const q of [stalled, alsoStalled, reading]) budget.update(q);
  const waiting = budget.admit();
  assert.ok(waiting);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(evicted, [], 'nothing is evicted before the bound');
  // More is queued for the reader, then its peer takes some: it drained, though the total
  // (215) stays above its lowest in the wait (210).
  c.ms = 500;
  reading.bytes = 40;
  await new Promise((r) => setTimeout(r, 20));
  c.ms = 1000;
  reading.bytes = 35;
  await new Promise((r) => setTimeout(r, 20));
  c.ms = 1999;
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(evicted, [], 'nothing is evicted before the bound');
  c.ms = 2000;
  await settles(waiting, 'the wait ending at its bound');
  // Evicting the largest (120) alone would leave 95 within the limit, and the other stopped peer
  // to fill it again: both that stopped draining go, largest first; the reader stays.
  assert.deepEqual(evicted, ['stalled', 'also stalled']);
  assert.equal(evictions, 2);
  assert.equal(budget.queuedBytes, 35);
  assert.equal(budget.admit(), undefined);
});

test('send budget should evict the largest of the queues that drain when those that stopped are not enough', async () => {
  const evicted: string[] = [];
  const { budget, clock: c } = budgetOnClock({ limitBytes: 100, stallMs: 1000 });
  const big = queue('big reader', evicted);
  const small = queue('small reader', evicted);
  big.bytes = 150;
  small.bytes = 40;
  for (const q of [big, small]) budget.update(q);
  const waiting = budget.admit();
  // The total falls once (175), then stays there while each peer takes bytes in turn and more is
  // queued for the other: both read, and the total stops falling.
  c.ms = 10;
  big.bytes = 140;
  small.bytes = 35;
  await new Promise((r) => setTimeout(r, 20));
  c.ms = 500;
  big.bytes = 130;
  small.bytes = 45;
  await new Promise((r) => setTimeout(r, 20));
  c.ms = 700;
  big.bytes = 140;
  small.bytes = 35;
  await new Promise((r) => setTimeout(r, 20));
  c.ms = 1010;
  await settles(waiting, 'the wait ending at its bound');
  assert.deepEqual(evicted, ['big reader']);
  assert.equal(budget.queuedBytes, 35);
});

test('send budget should not cut short a wait whose total keeps falling, however long it takes', async () => {
  const evicted: string[] = [];
  const { budget, clock: c } = budgetOnClock({ limitBytes: 100, stallMs: 1000 });
  const slow = queue('slow but reading', evicted);
  slow.bytes = 1000;
  budget.update(slow);
  let done = false;
  const waiting = budget.admit();
  void waiting?.then(() => (done = true));
  // 900 ms per step, under the bound each time, for 4.5 s in all.
  for (let step = 1; step <= 5; step++) {
    c.ms = step * 900;
    slow.bytes = 1000 - step * 150;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(done, false);
  assert.deepEqual(evicted, []);
  slow.bytes = 100;
  await settles(waiting, 'the wait ending once drained');
  assert.deepEqual(evicted, []);
});

test('send budget should end every wait, however many, together', async () => {
  const { budget, clock: c, waits } = budgetOnClock({ limitBytes: 10, stallMs: 1000 });
  const a = queue('a', []);
  a.bytes = 11;
  budget.update(a);
  const first = budget.admit();
  c.ms = 100;
  const second = budget.admit();
  c.ms = 1000;
  await settles(
    Promise.all([first, second]).then(() => undefined),
    'both waits ending',
  );
  assert.deepEqual(waits, [1000, 900]);
});
