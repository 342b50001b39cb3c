import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createEvent } from '@ripple/events';
import type { AnyEvent } from '@ripple/events';
import { LeasedDirectory, MemoryDepartures, MemoryHistory, MemoryLeasedSets } from '@ripple/registry';
import { createLogger } from '@ripple/telemetry';
import type { Connection } from './connections.js';
import { LocalHub } from './hub.js';
import { Membership, SUBSCRIPTION_REVOKED } from './membership.js';
import { Subscriptions } from './subscriptions.js';

const at = '2026-11-29T10:00:00.700Z';
const left = (userId: string, roomId = 'r1') =>
  createEvent('chat.member.left', { source: 't', data: { roomId, userId, by: 'owner', at } });
const said = (body: string) =>
  createEvent('chat.message.sent', {
    source: 't',
    data: { roomId: 'r1', messageId: `m-${body}`, senderId: 'owner', body, sentAt: at },
  });

/** One node: a hub, connections of users that read channels through Subscriptions, and Membership. */
function node() {
  const history = new MemoryHistory(100);
  const departures = new MemoryDepartures(60_000);
  const directory = new LeasedDirectory(new MemoryLeasedSets(), 't:', 'n1', 15_000);
  const connections: Connection[] = [];
  const store = { since: 0 as number | undefined };
  const membership = new Membership({
    departures,
    storeSince: () => Promise.resolve(store.since),
    connections: () => connections,
    logger: createLogger('t', 'silent'),
  });
  const hub = new LocalHub({ history, fillLimit: 100, onHandedOut: (f) => membership.observe(f) });
  const deps = { nodeId: 'n1', hub, history, directory, historyLimit: 100 };
  const client = async (userId: string, channels: string[]) => {
    const got: string[] = [];
    const subscriptions = new Subscriptions(deps, {
      event: (f) => got.push(`${f.channel} ${(JSON.parse(f.frame) as { event: AnyEvent }).event.type}`),
      gap: () => got.push('gap'),
    });
    connections.push({
      id: `c-${userId}`,
      userId,
      channels: () => subscriptions.names(),
      moveAway: () => undefined,
      revoke: (channel, code) => {
        const removed = subscriptions.remove(channel);
        got.push(`unsubscribed ${channel} ${code}`);
        return removed;
      },
    });
    for (const channel of channels) await subscriptions.add(channel, undefined);
    return got;
  };
  /** Routes like the router: record, append, hand to the hub. */
  const route = async (event: AnyEvent, channel = 'chat:r1') => {
    await membership.record(event);
    const p = await history.append(channel, JSON.stringify(event));
    const frame = `{"op":"event","channel":"${channel}","offset":"${p.offset}","epoch":"${p.epoch}","event":${JSON.stringify(event)}}`;
    hub.publish({ channel, ...p, frame });
  };
  return { membership, departures, client, route, store };
}

test('membership should end the leaving user’s subscription to the room right after the left event, and only theirs', async () => {
  const { client, route } = node();
  const owner = await client('owner', ['chat:r1']);
  const b = await client('b', ['chat:r1', 'chat:r2']);
  const c = await client('c', ['chat:r1']);
  await route(said('hello'));
  await route(left('b'));
  await route(said('after'));
  await route(said('elsewhere'), 'chat:r2');
  assert.deepEqual(b, [
    'chat:r1 chat.message.sent',
    'chat:r1 chat.member.left',
    `unsubscribed chat:r1 ${SUBSCRIPTION_REVOKED}`,
    'chat:r2 chat.message.sent',
  ]);
  const full = ['chat:r1 chat.message.sent', 'chat:r1 chat.member.left', 'chat:r1 chat.message.sent'];
  assert.deepEqual(owner, full);
  assert.deepEqual(c, full);
});

test('membership should record when a user left a room from the event, for authorizeChannel', async () => {
  const { membership } = node();
  await membership.record(said('not-a-departure'));
  assert.equal(await membership.leftAt('r1', 'owner'), 0, 'nothing since the store began');
  await membership.record(left('b'));
  assert.equal(await membership.leftAt('r1', 'b'), Date.parse(at));
  assert.equal(await membership.leftAt('r2', 'b'), 0);
});

test('membership should refuse tokens signed before Redis lost the departures it kept', async () => {
  const { membership, store } = node();
  await membership.record(left('b'));
  store.since = undefined; // the store lost its data: no heartbeat has marked it since
  const lostAt = Date.now();
  assert.ok(((await membership.leftAt('r1', 'nobody')) ?? 0) >= lostAt, 'any older token proves nothing');
  store.since = lostAt + 5;
  assert.equal(await membership.leftAt('r1', 'b'), lostAt + 5);
});
