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

test('a wait for the events from history should end once the last of them is handed over, or at once when none waits', async () => {
  const pending = new PendingFrames<string>(100);
  let handedOver = false;
  await pending.historyHandedOver(); // none waits
  pending.push('h1', fromHistory);
  pending.push('h2', fromHistory);
  pending.push('live', live);
  const waiting = pending.historyHandedOver().then(() => (handedOver = true));
  const stream = { writableNeedDrain: false };
  pending.handOver(() => (stream.writableNeedDrain = true), stream);
  await Promise.resolve();
  assert.equal(handedOver, false, 'one event from history still waits');
  stream.writableNeedDrain = false;
  pending.handOver(() => (stream.writableNeedDrain = true), stream);
  await waiting;
  assert.deepEqual([handedOver, pending.length], [true, 1], 'the live frame behind it may still wait');
});

test('clearing pending frames should drop them all and end a wait for the events from history', async () => {
  const pending = new PendingFrames<string>(100);
  pending.push('h1', fromHistory);
  pending.push('live', live);
  const waiting = pending.historyHandedOver();
  pending.clear();
  await waiting;
  assert.deepEqual([pending.length, pending.bytes, pending.pacedBytes()], [0, 0, 0]);
  await pending.historyHandedOver();
});
