import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CommitStamps } from './commit-stamps.js';

/** Stamps on a clock the test moves by hand (milliseconds, starting at 1000). */
function stampsOnManualClock(maxEntries: number, maxAgeMs: number) {
  let now = 1000;
  const stamps = new CommitStamps({ maxEntries, maxAgeMs, now: () => now });
  return { stamps, advance: (ms: number) => (now += ms) };
}

test('commit stamps should give back the time an event was stamped at, once', () => {
  const { stamps, advance } = stampsOnManualClock(10, 60_000);
  stamps.stamp(['a', 'b']);
  advance(7);
  stamps.stamp(['c']);
  assert.equal(stamps.take('a'), 1000);
  assert.equal(stamps.take('c'), 1007);
  assert.equal(stamps.take('a'), undefined, 'taken entries are removed');
  assert.equal(stamps.take('never-stamped'), undefined);
  assert.equal(stamps.size, 1);
  assert.equal(stamps.dropped, 0);
});

test('commit stamps should drop the oldest entries beyond their count bound and count them', () => {
  const { stamps, advance } = stampsOnManualClock(3, 60_000);
  for (const id of ['a', 'b', 'c', 'd', 'e']) {
    stamps.stamp([id]);
    advance(1);
  }
  assert.equal(stamps.size, 3);
  assert.equal(stamps.dropped, 2);
  assert.equal(stamps.take('a'), undefined);
  assert.equal(stamps.take('b'), undefined);
  assert.equal(stamps.take('c'), 1002);
  assert.equal(stamps.take('e'), 1004);
});

test('commit stamps should age out entries nobody took (a row another process published) and count them', () => {
  const { stamps, advance } = stampsOnManualClock(100, 1000);
  stamps.stamp(['old-1', 'old-2']);
  advance(600);
  stamps.stamp(['young']);
  advance(500); // old-* are 1,100 ms old, young 500 ms
  assert.equal(stamps.take('old-1'), undefined, 'an entry past its age is not answered even before a sweep');
  stamps.stamp(['new']);
  assert.equal(stamps.size, 2, 'stamping sweeps the aged entries out');
  assert.equal(stamps.dropped, 2);
  assert.equal(stamps.take('young'), 1600);
  assert.equal(stamps.take('new'), 2100);
});

test('commit stamps should keep the first stamp of an event stamped twice', () => {
  const { stamps, advance } = stampsOnManualClock(10, 60_000);
  stamps.stamp(['a']);
  advance(5);
  stamps.stamp(['a']);
  assert.equal(stamps.size, 1);
  assert.equal(stamps.take('a'), 1000);
});
