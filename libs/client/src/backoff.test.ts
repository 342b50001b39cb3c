import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from './backoff.js';
import { RecentKeys } from './dedupe.js';
import { parseServerFrame } from './frames.js';

test('backoff should double its ceiling per attempt up to the cap, with full jitter below it', () => {
  const options = { initialMs: 100, maxMs: 1000 };
  const almostOne = () => 0.999999;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 10].map((a) => backoffDelay(a, options, almostOne)),
    [99, 199, 399, 799, 999, 999],
  );
  assert.equal(
    backoffDelay(5, options, () => 0),
    0,
  );
  assert.equal(backoffDelay(1000, options, almostOne), 999);
});

test('recent keys should report a repeat within the window and forget the oldest beyond it', () => {
  const keys = new RecentKeys(3);
  assert.deepEqual(
    ['a', 'b', 'a', 'c', 'd', 'a', 'd'].map((k) => keys.seen(k)),
    [false, false, true, false, false, false, true],
  );
});

test('server frames should be parsed only when well-formed', () => {
  const event = { id: 'e1', type: 'post.created', data: {} };
  assert.deepEqual(parseServerFrame(JSON.stringify({ op: 'event', channel: 'c', offset: '3', epoch: 'x', event })), {
    op: 'event',
    channel: 'c',
    offset: '3',
    epoch: 'x',
    event,
  });
  for (const bad of [
    'not json',
    '[]',
    '{"op":"nope"}',
    JSON.stringify({ op: 'event', channel: 'c', offset: '03', epoch: 'x', event }),
    JSON.stringify({ op: 'event', channel: 'c', offset: '3', epoch: 'x' }),
    JSON.stringify({ op: 'ack', channel: 'c', offset: 'x', epoch: 'e' }),
    JSON.stringify({ op: 'welcome', user: 'u1' }),
    JSON.stringify({ op: 'error', message: 'no code' }),
  ]) {
    assert.equal(parseServerFrame(bad), undefined, bad);
  }
});
