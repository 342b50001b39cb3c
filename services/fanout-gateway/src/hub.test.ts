import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryHistory } from '@ripple/registry';
import type { StreamPosition } from '@ripple/registry';
import { LocalHub } from './hub.js';
import type { ChannelFrame, Subscriber } from './hub.js';
import { eventFrame } from './protocol.js';

/** A subscriber that records what it gets: `e<offset>` per frame, `gap@<offset>` per gap. */
function recorder(): Subscriber & { got: string[]; gaps: StreamPosition[] } {
  const r = {
    got: [] as string[],
    gaps: [] as StreamPosition[],
    deliver: (f: ChannelFrame) => r.got.push(`e${f.offset}`),
    gap: (_channel: string, position: StreamPosition) => {
      r.gaps.push(position);
      r.got.push(`gap@${position.offset}`);
    },
  };
  return r;
}

async function setUp(maxLength = 100) {
  const history = new MemoryHistory(maxLength);
  const gaps: string[] = [];
  const hub = new LocalHub({ history, fillLimit: 100, onGap: (reason) => gaps.push(reason) });
  const sub = recorder();
  const channel = 'creator:u1';
  hub.subscribe(channel, sub);
  hub.position(channel, await history.position(channel));
  const frames: ChannelFrame[] = [];
  const append = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const p = await history.append(channel, `{"n":${frames.length + 1}}`);
      frames.push({ channel, ...p, frame: eventFrame(channel, p.offset, p.epoch, '{}') });
    }
  };
  const settle = () => new Promise((r) => setImmediate(r));
  const frame = (i: number): ChannelFrame => frames[i] ?? assert.fail(`no frame ${i}`);
  return { history, hub, sub, channel, frame, append, settle, gaps };
}

test('the hub should hand out a frame that overtook another only after the missing one, read from history', async () => {
  const t = await setUp();
  await t.append(3);
  assert.equal(t.hub.publish(t.frame(2)), 0, 'held back: 1 and 2 are missing');
  await t.settle();
  assert.deepEqual(t.sub.got, ['e1', 'e2', 'e3']);
  assert.deepEqual(t.gaps, ['filled']);
  // The overtaken frames arrive late over the node bus: already handed out.
  assert.equal(t.hub.publish(t.frame(0)), 0);
  assert.equal(t.hub.publish(t.frame(1)), 0);
  assert.deepEqual(t.sub.got, ['e1', 'e2', 'e3']);
});

test('the hub should release frames in order when the missing one arrives before history answers', async () => {
  const t = await setUp();
  await t.append(2);
  t.hub.publish(t.frame(1));
  assert.equal(t.hub.publish(t.frame(0)), 2);
  await t.settle();
  assert.deepEqual(t.sub.got, ['e1', 'e2']);
});

test('the hub should signal a gap when history no longer has the missing frames, then go on', async () => {
  const t = await setUp(5);
  await t.append(20);
  t.hub.publish(t.frame(19));
  await t.settle();
  assert.deepEqual(t.sub.got, ['gap@19', 'e20']);
  assert.deepEqual(t.gaps, ['lost']);
});

test('the hub should signal a new epoch as a gap and drop late frames of the lost history', async () => {
  const t = await setUp();
  await t.append(1);
  t.hub.publish(t.frame(0));
  const old = { ...t.frame(0), offset: '2' };
  t.history.forget(t.channel);
  const p = await t.history.append(t.channel, '{}');
  t.hub.publish({ channel: t.channel, ...p, frame: '{}' });
  t.hub.publish(old);
  await t.settle();
  assert.deepEqual(t.sub.got, ['e1', 'gap@0', 'e1']);
  assert.equal(t.sub.gaps[0]?.epoch, p.epoch);
});

test('the hub should keep frames that arrive before the channel position is known, and release them from there', async () => {
  const history = new MemoryHistory(100);
  const hub = new LocalHub({ history, fillLimit: 100 });
  const sub = recorder();
  const channel = 'post:p1';
  await history.append(channel, '{}');
  hub.subscribe(channel, sub);
  const p2 = await history.append(channel, '{}');
  hub.publish({ channel, ...p2, frame: '{}' });
  assert.deepEqual(sub.got, []);
  hub.position(channel, { offset: '1', epoch: p2.epoch });
  assert.deepEqual(sub.got, ['e2']);
});

test('catchUp should deliver the tail that other routers appended to history while no frame reached this node', async () => {
  const t = await setUp();
  await t.append(2);
  t.hub.publish(t.frame(0));
  await t.append(3); // routed elsewhere: only in history, and no later frame reveals them
  assert.deepEqual(t.sub.got, ['e1']);
  assert.equal(await t.hub.catchUp(), 4);
  assert.deepEqual(t.sub.got, ['e1', 'e2', 'e3', 'e4', 'e5']);
  assert.deepEqual(t.gaps, ['filled']);
  // The late frames, and a second catch-up, hand out nothing twice.
  assert.equal(t.hub.publish(t.frame(3)), 0);
  assert.equal(await t.hub.catchUp(), 0);
  assert.deepEqual(t.sub.got, ['e1', 'e2', 'e3', 'e4', 'e5']);
  assert.deepEqual(t.gaps, ['filled']);
});

test('catchUp should signal a gap at the channel head when history no longer has the tail', async () => {
  const t = await setUp(2);
  await t.append(1);
  t.hub.publish(t.frame(0));
  await t.append(4); // history keeps offsets 4 and 5 only
  await t.hub.catchUp();
  assert.deepEqual(t.sub.got, ['e1', 'gap@5']);
  assert.deepEqual(t.gaps, ['lost']);
  await t.append(1);
  t.hub.publish(t.frame(5));
  assert.deepEqual(t.sub.got, ['e1', 'gap@5', 'e6'], 'goes on live after the head');
});

test('catchUp should report a history it could not read, and signal nothing', async () => {
  const history = new MemoryHistory(100);
  const hub = new LocalHub({
    history: { since: () => Promise.reject(new Error('redis down')) },
    fillLimit: 100,
  });
  const sub = recorder();
  hub.subscribe('creator:u1', sub);
  hub.position('creator:u1', await history.position('creator:u1'));
  await assert.rejects(hub.catchUp(), (err: AggregateError) => String(err.errors[0]).includes('redis down'));
  assert.deepEqual(sub.got, []);
});

test('catchUp of given channels should read only those the node holds, and leave the others as they are', async () => {
  const t = await setUp();
  const other = recorder();
  t.hub.subscribe('creator:u2', other);
  t.hub.position('creator:u2', await t.history.position('creator:u2'));
  await t.append(2);
  await t.history.append('creator:u2', '{}');
  assert.equal(await t.hub.catchUp(['creator:u1', 'creator:nobody']), 2);
  assert.deepEqual(t.sub.got, ['e1', 'e2']);
  assert.deepEqual(other.got, [], 'creator:u2 was not read');
  assert.equal(await t.hub.catchUp(), 1);
  assert.deepEqual(other.got, ['e1']);
});

test('catchUp of a channel whose position is not known yet should read its history once the position comes', async () => {
  const history = new MemoryHistory(100);
  const hub = new LocalHub({ history, fillLimit: 100 });
  const sub = recorder();
  const channel = 'creator:u1';
  hub.subscribe(channel, sub);
  // The subscriber read the position (offset 0); frames appended after it never reached the node.
  const position = await history.position(channel);
  await history.append(channel, '{}');
  await history.append(channel, '{}');
  assert.equal(await hub.catchUp([channel]), 0, 'nothing to read from yet');
  hub.position(channel, position);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(sub.got, ['e1', 'e2']);
});
