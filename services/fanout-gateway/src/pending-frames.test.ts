import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PendingFrames } from './pending-frames.js';

const fromHistory = { channel: 'creator:c0', offset: '1', epoch: 'e', fromHistory: true } as const;
const live = { channel: 'creator:c0', offset: '2', epoch: 'e' } as const;

test('pending frames should be handed over in order until the stream needs a drain, and all at once without one', () => {
  const pending = new PendingFrames<string>(100);
  for (const frame of ['a', 'bb', 'ccc', 'dddd']) pending.push(frame);
  assert.equal(pending.bytes, 10);
  const written: string[] = [];
  const stream = { writableNeedDrain: false };
  const left = pending.handOver((frame) => {
    written.push(frame);
    stream.writableNeedDrain = written.length === 2;
  }, stream);
  assert.deepEqual([written, left, pending.bytes], [['a', 'bb'], 2, 7]);
  assert.equal(
    pending.handOver((frame) => written.push(frame)),
    0,
  );
  assert.deepEqual([written, pending.length, pending.bytes], [['a', 'bb', 'ccc', 'dddd'], 0, 0]);
});

test('events from history should be paced only while they are at most one replay of frames, and live frames never', () => {
  const pending = new PendingFrames<Buffer | string>(2);
  pending.push('live', live);
  pending.push(Buffer.from('history-1'), fromHistory);
  pending.push('é', fromHistory); // two bytes of UTF-8
  assert.deepEqual([pending.bytes, pending.pacedBytes()], [4 + 9 + 2, 9 + 2]);
  pending.push('history-3', fromHistory);
  assert.equal(pending.pacedBytes(), 0, 'three frames from history: more than one replay, all counted');
  const stream = { writableNeedDrain: false };
  let count = 0;
  pending.handOver(() => (stream.writableNeedDrain = ++count === 2), stream);
  assert.deepEqual([pending.length, pending.pacedBytes()], [2, 2 + 9]);
  pending.handOver(() => undefined);
  assert.deepEqual([pending.bytes, pending.pacedBytes()], [0, 0]);
});
