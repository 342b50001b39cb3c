import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { signSubscriptionToken } from '@ripple/auth';
import { ConnectionLifecycle } from './lifecycle.js';
import { singleNodeGateway, unitSecret as secret } from './single-node.js';

const channels = ['user:u1', 'user:u2', 'creator:c1', 'post:p1', 'chat:r1', 'creator:', 'nope', ''];

const offset = fc.oneof(
  fc.constantFrom('0', '1', '5', '999999999999999', '1000000000000000', '-1', '01', '1e3', ''),
  fc.bigInt({ min: 0n, max: 10n ** 30n }).map(String),
  fc.string(),
);
const epoch = fc.oneof(fc.constantFrom('x', '0'.repeat(24), 'f'.repeat(64), 'f'.repeat(65), ''), fc.string());
const value = fc.oneof(fc.string(), fc.integer(), fc.constant(null), fc.boolean(), fc.object());

/** Frames close to valid ones (each field may be right, wrong or missing), plus arbitrary JSON and text. */
const frame = fc.oneof(
  fc
    .record(
      {
        op: fc.oneof(fc.constantFrom('subscribe', 'unsubscribe', 'ping', 'refresh', 'dance'), value),
        id: fc.oneof(fc.string({ maxLength: 80 }), value),
        channel: fc.oneof(fc.constantFrom(...channels), fc.string(), value),
        since: fc.oneof(fc.record({ offset, epoch }, { requiredKeys: [] }), value),
        token: fc.oneof(fc.constant('chat-token'), fc.string(), value),
        extra: value,
      },
      { requiredKeys: [] },
    )
    .map((f) => JSON.stringify(f)),
  fc.json(),
  fc.string(),
);

const gateway = () => singleNodeGateway({ limits: { maxSubscriptions: 4, refreshWindowMs: 1000 } });

test('the frame handler should never answer GW_INTERNAL, crash, or leave a subscription or registry entry behind', async () => {
  const chatToken = await signSubscriptionToken(secret, 'u1', 'chat:r1');
  await fc.assert(
    fc.asyncProperty(fc.array(frame, { maxLength: 25 }), async (texts) => {
      const g = gateway();
      const sent: Record<string, unknown>[] = [];
      const lifecycle = new ConnectionLifecycle(g.deps, {
        send: (_op, text) => sent.push(JSON.parse(text) as Record<string, unknown>),
        bufferedAmount: () => 0,
        historyHandedOver: () => Promise.resolve(),
        close: () => undefined,
      });
      const session = await lifecycle.establish({ sub: 'u1', exp: undefined });
      assert.ok(session);
      for (const text of texts) lifecycle.receive(text.replace('"chat-token"', JSON.stringify(chatToken)));
      await session.settled();
      const internal = sent.filter((f) => f.code === 'GW_INTERNAL');
      assert.deepEqual(internal, []);
      for (const f of sent) if (f.op === 'error') assert.equal(typeof f.code, 'string');
      await lifecycle.release();
      assert.equal(g.hub.subscriptionCount, 0);
      assert.equal(g.connections.size, 0);
      for (const channel of channels) assert.deepEqual(await g.directory.nodesFor(channel), [], channel);
      assert.deepEqual(await g.directory.connectionsOf('u1'), []);
    }),
    { numRuns: 300 },
  );
});
