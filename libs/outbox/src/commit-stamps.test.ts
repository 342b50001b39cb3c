import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommitStamps } from './commit-stamps.js';

/** A clock the test moves by hand (milliseconds). */
function manualClock(start = 1000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

test('commit stamps should give back the time an event was stamped at, once', () => {
  const clock = manualClock();
  const stamps = new CommitStamps({ maxEntries: 10, maxAgeMs: 60_000, now: clock.now });
  stamps.stamp(['a', 'b']);
  clock.advance(7);
  stamps.stamp(['c']);
  assert.equal(stamps.take('a'), 1000);
  assert.equal(stamps.take('c'), 1007);
  assert.equal(stamps.take('a'), undefined, 'taken entries are removed');
  assert.equal(stamps.take('never-stamped'), undefined);
  assert.equal(stamps.size, 1);
  assert.equal(stamps.dropped, 0);
});

test('commit stamps should drop the oldest entries beyond their count bound and count them', () => {
  const clock = manualClock();
  const stamps = new CommitStamps({ maxEntries: 3, maxAgeMs: 60_000, now: clock.now });
  for (const id of ['a', 'b', 'c', 'd', 'e']) {
    stamps.stamp([id]);
    clock.advance(1);
  }
  assert.equal(stamps.size, 3);
  assert.equal(stamps.dropped, 2);
  assert.equal(stamps.take('a'), undefined);
  assert.equal(stamps.take('b'), undefined);
  assert.equal(stamps.take('c'), 1002);
  assert.equal(stamps.take('e'), 1004);
});

test('commit stamps should age out entries nobody took (a row another process published) and count them', () => {
  const clock = manualClock();
  const stamps = new CommitStamps({ maxEntries: 100, maxAgeMs: 1000, now: clock.now });
  stamps.stamp(['old-1', 'old-2']);
  clock.advance(600);
  stamps.stamp(['young']);
  clock.advance(500); // old-* are 1,100 ms old, young 500 ms
  assert.equal(stamps.take('old-1'), undefined, 'an entry past its age is not answered even before a sweep');
  stamps.stamp(['new']);
  assert.equal(stamps.size, 2, 'stamping sweeps the aged entries out');
  assert.equal(stamps.dropped, 2);
  assert.equal(stamps.take('young'), 1600);
  assert.equal(stamps.take('new'), 2100);
});

test('commit stamps should keep the first stamp of an event stamped twice', () => {
  const clock = manualClock();
  const stamps = new CommitStamps({ maxEntries: 10, maxAgeMs: 60_000, now: clock.now });
  stamps.stamp(['a']);
  clock.advance(5);
  stamps.stamp(['a']);
  assert.equal(stamps.size, 1);
  assert.equal(stamps.take('a'), 1000);
});
