import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRippleError } from '@ripple/errors';
import { createEvent } from '@ripple/events';
import { LeasedDirectory, MemoryHistory, MemoryLeasedSets, SequentialRouteLog } from '@ripple/registry';
import type { NodeMessage } from './bus.js';
import type { ChannelFrame, LocalHub } from './hub.js';
import { eventFrame } from './protocol.js';
import { Router } from './router.js';
import type { RouterDeps } from './router.js';
import { unitBus, unitMetrics } from './single-node.js';

/** `count` post.created events of one author (one channel: creator:u1). */
function posts(count: number) {
  return Array.from({ length: count }, (_, i) =>
    createEvent('post.created', {
      source: 't',
      data: { postId: `p${i}`, authorId: 'u1', body: 'b', createdAt: new Date().toISOString() },
    }),
  );
}

/**
 * A router over memory adapters whose hub has 100 sockets on creator:u1 (it records the frames it
 * is handed there) and none on the other channels.
 */
function pacedRouter(
  admit: (keepAlive?: () => void) => Promise<void> | undefined = () => undefined,
  sliceBytes?: number,
  more: Partial<RouterDeps> = {},
) {
  const handed: string[] = [];
  const hub = {
    publish: (frame: ChannelFrame) => {
      if (frame.channel !== 'creator:u1') return 0;
      handed.push(`${frame.channel}#${frame.offset}`);
      return 100;
    },
  } as unknown as LocalHub;
  const history = new MemoryHistory(1000);
  const directory = new LeasedDirectory(new MemoryLeasedSets(() => 0), 't:', 'n1', 15_000);
  const metrics = unitMetrics();
  const sent: unknown[] = [];
  const router = new Router({
    nodeId: 'n1',
    hub,
    routes: new SequentialRouteLog(history, directory),
    metrics,
    bus: {
      ...unitBus,
      send: (node, message) => Promise.resolve(void sent.push([node, message])),
      broadcast: (message) => Promise.resolve(void sent.push(message)),
    },
    admit,
    ...(sliceBytes !== undefined && { sliceBytes }),
    ...more,
  });
  return { router, handed, history, metrics, sent };
}

/** A message from another node with the frames of `channel` at `offsets` (each frame 100 bytes). */
function message(channel: string, ...offsets: number[]): NodeMessage {
  return {
    frames: offsets.map((o) => {
      const frame = eventFrame(channel, String(o), 'e', '{}');
      return { channel, offset: String(o), epoch: 'e', time: new Date(0).toISOString(), frame: frame.padEnd(100) };
    }),
  };
}

const turns = (n: number) =>
  Array.from({ length: n }).reduce<Promise<unknown>>(
    (p) => p.then(() => new Promise((r) => setImmediate(r))),
    Promise.resolve(),
  );

test('the router should write a batch in slices, asking the send budget before each, and hand the waiting one the keepAlive', async () => {
  const asked: number[] = [];
  let kept = 0;
  let open: (() => void) | undefined;
  const { router, handed } = pacedRouter((keepAlive) => {
    asked.push(handed.length);
    keepAlive?.();
    // The budget is full once four frames were written: the rest waits until the test opens it.
    if (handed.length !== 4) return undefined;
    return new Promise<void>((resolve) => (open = resolve));
  }, 1);
  const events = posts(6);
  const routed = router.route(events, { keepAlive: () => (kept += 1) });
  // Every frame is bigger than a slice (1 byte): one frame per slice, the budget asked before each.
  while (!open) await new Promise((r) => setImmediate(r));
  assert.equal(handed.length, 4, 'nothing is written while the budget is full');
  assert.ok(kept > 0, 'the waiting batch keeps its consumer alive');
  open();
  await routed;
  // Before each slice; the last one holds only the user:u1 frame of the last event (no socket here).
  assert.deepEqual(asked, [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(
    handed,
    events.map((_, i) => `creator:u1#${i + 1}`),
  );
});

test('the router should write the batches it routed one after the other, not interleaved, when one waits for the budget', async () => {
  let open: (() => void) | undefined;
  let waited = false;
  const { router, handed } = pacedRouter((): Promise<void> | undefined => {
    if (waited || handed.length !== 1) return undefined;
    waited = true;
    return new Promise<void>((resolve) => (open = resolve));
  }, 1);
  const first = router.route(posts(3));
  while (!open) await new Promise((r) => setImmediate(r));
  // Routed (in history) while the first waits for the budget: its frames wait their turn.
  const second = router.route(posts(2));
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  assert.deepEqual(handed, ['creator:u1#1'], 'the second batch waits for the first');
  open();
  await Promise.all([first, second]);
  assert.deepEqual(handed, ['creator:u1#1', 'creator:u1#2', 'creator:u1#3', 'creator:u1#4', 'creator:u1#5']);
});

test('the router should write a message from another node in slices under the send budget, in turn after a routed batch that waits for it', async () => {
  const asked: number[] = [];
  let open: (() => void) | undefined;
  const { router, handed } = pacedRouter(
    () => {
      asked.push(handed.length);
      if (handed.length !== 1 || open) return undefined;
      return new Promise<void>((resolve) => (open = resolve));
    },
    undefined,
    // Two 100-byte frames per slice, whatever the number of sockets.
    { socketSliceBytes: 200 },
  );
  const routed = router.route(posts(2));
  while (!open) await turns(1);
  // Received while the routed batch waits for the budget: it waits its turn.
  const received = router.receive(message('creator:u1', 3, 4, 5, 6, 7));
  await turns(10);
  assert.deepEqual(handed, ['creator:u1#1'], 'nothing of the message is written before the batch ahead of it');
  assert.equal(router.receivedQueueBytes, 500, 'its frames are counted while they wait');
  open();
  await Promise.all([routed, received]);
  assert.equal(router.receivedQueueBytes, 0);
  assert.deepEqual(
    handed,
    [1, 2, 3, 4, 5, 6, 7].map((o) => `creator:u1#${o}`),
  );
  // The batch's frames are one a slice (each over 200 bytes; its user:u1 frames reach no socket
  // here), the budget asked before each; then the message's three slices of at most two frames.
  assert.deepEqual(asked, [0, 1, 2, 2, 4, 6]);
});

test('the router should drop a message from another node past its queue bound, count it, and read its channels from history in its turn', async () => {
  let open: (() => void) | undefined;
  const recovered: string[][] = [];
  const metrics = unitMetrics();
  const { router, handed } = pacedRouter(
    () => {
      if (handed.length !== 0 || open) return undefined;
      return new Promise<void>((resolve) => (open = resolve));
    },
    undefined,
    {
      metrics,
      receivedQueueBytes: 300,
      recover: (channels) => {
        recovered.push([...channels]);
        return Promise.resolve();
      },
    },
  );
  // The first message (200 bytes) waits for the budget; the second fits the bound (300) behind it; the next two do not.
  const first = router.receive(message('creator:u1', 1, 2));
  while (!open) await turns(1);
  const kept = router.receive(message('creator:u1', 3));
  const dropped = [router.receive(message('creator:u1', 4, 5)), router.receive(message('creator:u2', 1))];
  assert.equal(router.receivedQueueBytes, 300, 'what waits, the budget included, stays within the bound');
  open();
  await Promise.all([first, kept, ...dropped]);
  assert.deepEqual(handed, ['creator:u1#1', 'creator:u1#2', 'creator:u1#3'], 'the dropped frames are not written');
  assert.deepEqual(recovered, [['creator:u1', 'creator:u2']], 'one history read for both, after what was queued');
  const sample = (await metrics.nodeMessagesDropped.get()).values[0];
  assert.equal(sample?.value, 2);
});

test('the router should deliver and send nothing of a batch whose append a later owner of its partition fenced, and count it', async () => {
  const { router, handed, history, metrics, sent } = pacedRouter();
  const [first, second, third] = posts(3);
  assert.ok(first && second && third);
  await router.route([first], undefined, { source: 'posts/0', token: 2 });
  const sentBefore = sent.length;
  // A stale owner of posts/0 (token 1): refused on creator:u1 (and user:u1 is not appended either).
  await assert.rejects(
    router.route([second], undefined, { source: 'posts/0', token: 1 }),
    (err: unknown) => isRippleError(err) && err.code === 'KAFKA_BATCH_FENCED',
  );
  assert.deepEqual(handed, ['creator:u1#1'], 'nothing of the fenced batch is handed to sockets');
  assert.equal(sent.length, sentBefore, 'nor sent to other nodes');
  assert.equal((await metrics.fencedBatches.get()).values[0]?.value, 1);
  assert.equal((await history.position('creator:u1')).offset, '1');
  // The owner of the later token goes on.
  await router.route([third], undefined, { source: 'posts/0', token: 2 });
  assert.deepEqual(handed, ['creator:u1#1', 'creator:u1#2']);
});
