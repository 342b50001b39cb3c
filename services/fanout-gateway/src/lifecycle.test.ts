import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { signAccessToken } from '@ripple/auth';
import type { AccessClaims } from '@ripple/auth';
import type { Directory } from '@ripple/registry';
import { ConnectionLifecycle } from './lifecycle.js';
import { singleNodeGateway, unitLimits, unitSecret as secret } from './single-node.js';
import type { ConnectionSink } from './sink.js';

const DAY_MS = 24 * 3600 * 1000;

/** A recording sink. */
function recordingSink() {
  const sink = {
    frames: [] as Record<string, unknown>[],
    closed: undefined as { code: number; reason: string } | undefined,
    send: (_op: string, text: string) => {
      if (!sink.closed) sink.frames.push(JSON.parse(text) as Record<string, unknown>);
    },
    bufferedAmount: () => 0,
    historyHandedOver: () => Promise.resolve(),
    close: (code: number, reason: string) => {
      assert.equal(sink.closed, undefined, 'a sink is closed at most once');
      sink.closed = { code, reason };
    },
  } satisfies ConnectionSink & Record<string, unknown>;
  return sink;
}

/** A gateway whose registration of a connection waits until `register()` is called. */
function slowRegistration() {
  let register: () => void = () => undefined;
  const registered = new Promise<void>((resolve) => (register = resolve));
  const g = singleNodeGateway({
    wrap: (d) =>
      Object.assign(Object.create(d) as Directory, {
        connect: async (userId: string, id: string) => {
          const first = await d.connect(userId, id);
          await registered;
          return first;
        },
      }),
  });
  return { g, register };
}

test('a token valid for 30 days should get welcome and keep the connection open until exp', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_700_000_000_000 });
  const g = singleNodeGateway({ now: () => Date.now() });
  const sink = recordingSink();
  const exp = Math.floor(Date.now() / 1000) + 30 * 24 * 3600;
  const lifecycle = new ConnectionLifecycle(g.deps, sink);
  const session = await lifecycle.establish({ sub: 'u1', exp });
  assert.ok(session);
  assert.equal(sink.frames[0]?.op, 'welcome');
  const msLeft = exp * 1000 - Date.now();
  t.mock.timers.tick(msLeft - unitLimits.refreshWindowMs - 1);
  assert.equal(sink.closed, undefined);
  assert.equal(sink.frames.filter((f) => f.op === 'refresh_required').length, 0);
  t.mock.timers.tick(1);
  assert.deepEqual(sink.frames.at(-1), { op: 'refresh_required', expiresAt: exp });
  t.mock.timers.tick(unitLimits.refreshWindowMs - 1);
  assert.equal(sink.closed, undefined);
  t.mock.timers.tick(1);
  assert.deepEqual(sink.closed, { code: 4001, reason: 'AUTH_TOKEN_EXPIRED' });
  await lifecycle.release();
  assert.ok(await g.holdsNothing(['user:u1']));
});

test('refresh to a token valid for 30 days should be acked and keep the connection open', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_700_000_000_000 });
  const g = singleNodeGateway({ now: () => Date.now() });
  const sink = recordingSink();
  const lifecycle = new ConnectionLifecycle(g.deps, sink);
  const session = await lifecycle.establish({ sub: 'u1', exp: Math.floor(Date.now() / 1000) + 60 });
  assert.ok(session);
  const token = await signAccessToken(secret, 'u1', { ttlSeconds: 30 * 24 * 3600 });
  lifecycle.receive(JSON.stringify({ op: 'refresh', id: 'r', token }));
  await session.settled();
  assert.equal(sink.frames.at(-1)?.id, 'r');
  assert.equal(sink.frames.at(-1)?.op, 'ack');
  t.mock.timers.tick(29 * DAY_MS);
  assert.equal(sink.closed, undefined);
  assert.equal(sink.frames.filter((f) => f.op === 'refresh_required').length, 0);
  await lifecycle.release();
});

test('errors should echo the id of a frame rejected as GW_UNKNOWN_OP, GW_BAD_FRAME or GW_RATE_LIMITED', async () => {
  const g = singleNodeGateway();
  const sink = recordingSink();
  const lifecycle = new ConnectionLifecycle(
    { ...g.deps, limits: { ...unitLimits, rateBurst: 3, ratePerSecond: 1 } },
    sink,
  );
  const session = await lifecycle.establish({ sub: 'u1', exp: undefined });
  assert.ok(session);
  lifecycle.receive('{"op":"dance","id":"a"}');
  lifecycle.receive('{"op":"subscribe","id":"b"}');
  lifecycle.receive('{"op":"ping","id":"c","extra":1}');
  lifecycle.receive('{"op":"ping","id":"d"}');
  await session.settled();
  // The rate limit answers at once, before the frames queued ahead of it are handled.
  const errors = sink.frames
    .filter((f) => f.op === 'error')
    .map((f) => [f.id, f.code])
    .sort((x, y) => String(x[0]).localeCompare(String(y[0])));
  assert.deepEqual(errors, [
    ['a', 'GW_UNKNOWN_OP'],
    ['b', 'GW_BAD_FRAME'],
    ['c', 'GW_BAD_FRAME'],
    ['d', 'GW_RATE_LIMITED'],
  ]);
  lifecycle.receive('[1]');
  await lifecycle.release();
});

test('a connection the client closes during set-up should hold nothing once set-up finishes', async () => {
  const { g, register } = slowRegistration();
  const sink = recordingSink();
  const lifecycle = new ConnectionLifecycle(g.deps, sink);
  const setUp = lifecycle.establish({ sub: 'u1', exp: undefined });
  await lifecycle.release(); // the transport closed while the connection was being registered
  register();
  assert.equal(await setUp, undefined);
  assert.equal(sink.frames.length, 0, 'no welcome after release');
  assert.ok(await g.holdsNothing(['user:u1']));
  assert.deepEqual(await g.directory.connectionsOf('u1'), []);
});

test('a connection whose set-up ends after its node began draining should be closed with 1001, not welcomed', async () => {
  const { g, register } = slowRegistration();
  let draining = false;
  const sink = recordingSink();
  const lifecycle = new ConnectionLifecycle({ ...g.deps, isDraining: () => draining }, sink);
  const setUp = lifecycle.establish({ sub: 'u1', exp: undefined });
  draining = true; // SIGTERM while the connection is being registered: the drain's snapshot missed it
  register();
  assert.equal(await setUp, undefined);
  assert.deepEqual(sink.frames, [], 'no welcome');
  assert.deepEqual(sink.closed, { code: 1001, reason: 'node draining' });
  await lifecycle.release();
  assert.ok(await g.holdsNothing(['user:u1']));
});

test('a connection the server closes during set-up (its token expired) should hold nothing', async () => {
  const { g, register } = slowRegistration();
  const sink = recordingSink();
  const lifecycle = new ConnectionLifecycle(g.deps, sink);
  const claims: AccessClaims = { sub: 'u1', exp: Math.floor(g.clock.now / 1000) - 1 };
  const setUp = lifecycle.establish(claims);
  // The expiry timer fires while the connection is still being registered.
  await new Promise<void>((resolve) => setImmediate(resolve));
  await new Promise<void>((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(sink.closed, { code: 4001, reason: 'AUTH_TOKEN_EXPIRED' });
  register();
  assert.equal(await setUp, undefined);
  assert.ok(await g.holdsNothing(['user:u1']));
});

test('release should be idempotent, and a subscription after release should be refused', async () => {
  const g = singleNodeGateway();
  const sink = recordingSink();
  const lifecycle = new ConnectionLifecycle(g.deps, sink);
  const session = await lifecycle.establish({ sub: 'u1', exp: undefined });
  assert.ok(session);
  await session.subscribe('creator:c1', undefined, { id: 'x' });
  await Promise.all([lifecycle.release(), lifecycle.release(), session.release()]);
  await assert.rejects(session.subscribe('creator:c2', undefined, { id: 'y' }), { code: 'GW_CONNECTION_CLOSED' });
  assert.ok(await g.holdsNothing(['user:u1', 'creator:c1', 'creator:c2']));
});

test('subscribe with since on a brand-new channel should ack a real epoch that recovers later', async () => {
  const g = singleNodeGateway();
  const sink = recordingSink();
  const lifecycle = new ConnectionLifecycle(g.deps, sink);
  const session = await lifecycle.establish({ sub: 'u1', exp: undefined });
  assert.ok(session);
  lifecycle.receive(
    JSON.stringify({ op: 'subscribe', id: 's', channel: 'creator:new', since: { offset: '0', epoch: 'x' } }),
  );
  await session.settled();
  const ack = sink.frames.find((f) => f.id === 's');
  assert.equal(ack?.recovered, false);
  assert.match(String(ack?.epoch), /^[0-9a-f]{24}$/);
  mock.restoreAll();
});

test('revoke should end one subscription through the lifecycle, send unsubscribed with an ended position and release it', async () => {
  const g = singleNodeGateway();
  const positions: unknown[] = [];
  const sink = recordingSink();
  const recording: ConnectionSink = {
    ...sink,
    send: (op, text, position) => {
      positions.push(position);
      sink.send(op, text);
    },
  };
  const lifecycle = new ConnectionLifecycle(g.deps, recording);
  const session = await lifecycle.establish({ sub: 'u1', exp: undefined });
  assert.ok(session);
  lifecycle.receive('{"op":"subscribe","id":"s","channel":"post:p1"}');
  await session.settled();
  const [connection] = g.connections.all();
  assert.ok(connection);
  assert.deepEqual(connection.channels().sort(), ['post:p1', 'user:u1']);
  await connection.revoke('post:p1', 'GW_SUBSCRIPTION_REVOKED', 'gone');
  assert.deepEqual(sink.frames.at(-1), {
    op: 'unsubscribed',
    channel: 'post:p1',
    code: 'GW_SUBSCRIPTION_REVOKED',
    message: 'gone',
  });
  assert.deepEqual(positions.at(-1), { channel: 'post:p1', ended: true });
  assert.deepEqual(connection.channels(), ['user:u1']);
  assert.deepEqual(await g.directory.nodesFor('post:p1'), []);
  await connection.revoke('post:p1', 'GW_SUBSCRIPTION_REVOKED', 'gone');
  assert.equal(sink.frames.filter((f) => f.op === 'unsubscribed').length, 1, 'a second revoke sends nothing');
  await lifecycle.release();
  assert.ok(await g.holdsNothing(['post:p1', 'user:u1']));
});
