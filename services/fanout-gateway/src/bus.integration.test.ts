import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { runId, testInfra, waitUntil } from '@ripple/testing';
import { RedisNodeBus } from './bus.js';
import type { NodeMessage } from './bus.js';

// RedisNodeBus on the real Redis: Pub/Sub drops what is sent while a node's connection is down,
// so the node must hear when it is subscribed again (and then catch up from history).
const redis = new Redis(testInfra.redisUrl);
const admin = new Redis(testInfra.redisUrl);
after(() => {
  redis.disconnect();
  admin.disconnect();
});

const message = (offset: string): NodeMessage => ({
  frames: [{ channel: 'creator:u1', offset, epoch: 'e', frame: '{}', time: new Date(0).toISOString() }],
});

test('the node bus should say when its Pub/Sub connection was lost and is subscribed again, and receive again', async () => {
  const keyPrefix = `bus:${runId()}:`;
  let subscriberId: Promise<unknown> | undefined;
  let resubscribed = 0;
  const bus = new RedisNodeBus({
    redis,
    keyPrefix,
    nodeId: 'n1',
    onBadMessage: (err) => assert.fail(String(err)),
    // The Pub/Sub connection, before it subscribes: its id, to cut it from the server side.
    watch: (connection) => {
      subscriberId ??= connection.client('ID');
    },
    onResubscribed: () => (resubscribed += 1),
  });
  const received: string[] = [];
  await bus.start((m) => received.push(...m.frames.map((f) => f.offset)));
  try {
    await bus.send('n1', message('1'));
    await waitUntil('the first message', 5000, () => received.length === 1);
    assert.equal(resubscribed, 0, 'not on the first subscription');

    await admin.client('KILL', 'ID', String(await subscriberId));
    await waitUntil('the bus to subscribe again', 10_000, () => resubscribed === 1);
    await bus.send('n1', message('2'));
    await waitUntil('the message after the reconnect', 5000, () => received.length === 2);
    assert.deepEqual(received, ['1', '2']);
  } finally {
    await bus.stop();
  }
});

test('a broadcast should reach every other node but not come back to the node that sent it', async () => {
  const keyPrefix = `bus:${runId()}:`;
  const node = (nodeId: string) =>
    new RedisNodeBus({
      redis,
      keyPrefix,
      nodeId,
      onBadMessage: (err) => assert.fail(String(err)),
      watch: () => undefined,
    });
  const [n1, n2] = [node('n1'), node('n2')];
  const got = { n1: [] as string[], n2: [] as string[] };
  await n1.start((m) => got.n1.push(...m.frames.map((f) => f.offset)));
  await n2.start((m) => got.n2.push(...m.frames.map((f) => f.offset)));
  try {
    await n1.broadcast(message('1'));
    // Published after the broadcast on the same connection: when n1 has it, n1 would have had
    // its own broadcast before it.
    await n1.send('n1', message('2'));
    await waitUntil('the broadcast at n2 and the marker at n1', 5000, () => got.n2.length === 1 && got.n1.length === 1);
    assert.deepEqual(got, { n1: ['2'], n2: ['1'] });
  } finally {
    await Promise.all([n1.stop(), n2.stop()]);
  }
});
