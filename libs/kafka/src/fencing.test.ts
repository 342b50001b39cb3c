import { test } from 'node:test';
import assert from 'node:assert/strict';
import kafkajs from 'kafkajs';
import type { GroupDescription } from 'kafkajs';
import { createLogger } from '@ripple/telemetry';
import { AssignmentFence } from './fencing.js';

const { AssignerProtocol } = kafkajs;
const logger = createLogger('fencing-test', 'silent');

/** The group as `describeGroup` answers: `state`, and member m1 holding `assignment`. */
function group(state: GroupDescription['state'], assignment: Record<string, number[]>): GroupDescription {
  return {
    groupId: 'g',
    protocol: 'RoundRobinAssigner',
    protocolType: 'consumer',
    state,
    members: [
      {
        memberId: 'm1',
        clientId: 'c',
        clientHost: 'h',
        memberMetadata: Buffer.alloc(0),
        memberAssignment: AssignerProtocol.MemberAssignment.encode({
          version: 0,
          assignment,
          userData: Buffer.alloc(0),
        }),
      },
    ],
  };
}

/** An issuer counting up from 10 that fails its first `failures` calls. */
function issuer(failures = 0) {
  let calls = 0;
  let last = 10;
  return () => (++calls <= failures ? Promise.reject(new Error('store down')) : Promise.resolve(++last));
}

test('a join should get its token once the group is still stable with this member holding the same partitions', async () => {
  const fence = new AssignmentFence({ next: issuer(), logger, retryMs: 1 });
  const { join, previous } = fence.joined('m1', { t: [0, 1] }, () => Promise.resolve(group('Stable', { t: [1, 0] })));
  assert.equal(previous, undefined);
  assert.equal(await join.token, 11);
  assert.deepEqual(
    [join.holds('t', 0), join.holds('t', 1), join.holds('t', 2), join.holds('u', 0)],
    [true, true, false, false],
  );
});

test('a join should get no token (its batches are fenced) when the group moved on before its token was confirmed', async () => {
  const cases: [string, GroupDescription][] = [
    ['rebalancing', group('PreparingRebalance', { t: [0] })],
    ['assigned other partitions', group('Stable', { t: [1] })],
    ['assigned nothing', group('Stable', {})],
    ['dropped from the group', { ...group('Stable', { t: [0] }), members: [] }],
  ];
  for (const [why, description] of cases) {
    const fence = new AssignmentFence({ next: issuer(), logger, retryMs: 1 });
    const { join } = fence.joined('m1', { t: [0] }, () => Promise.resolve(description));
    assert.equal(await join.token, undefined, why);
  }
});

test('a join superseded by the next one, or by the consumer stopping, before its token was confirmed should get none', async () => {
  const fence = new AssignmentFence({ next: issuer(), logger, retryMs: 1 });
  const stable = () => Promise.resolve(group('Stable', { t: [0] }));
  // The next join comes while the first one's token is being issued.
  const { join: first } = fence.joined('m1', { t: [0] }, stable);
  const { join: second, previous } = fence.joined('m1', { t: [0] }, stable);
  assert.equal(previous, first);
  assert.equal(await first.token, undefined);
  assert.equal(await second.token, 12, 'the next join gets a greater token');
  fence.close();
  const { join: afterClose } = fence.joined('m1', { t: [0] }, () => Promise.resolve(group('Stable', { t: [0] })));
  assert.equal(await afterClose.token, undefined);
  assert.equal(fence.current, undefined);
});

test('a join should retry a token issuer or a coordinator that failed', async () => {
  const fence = new AssignmentFence({ next: issuer(2), logger, retryMs: 1 });
  let described = 0;
  const { join } = fence.joined('m1', { t: [0] }, () =>
    ++described === 1 ? Promise.reject(new Error('coordinator moved')) : Promise.resolve(group('Stable', { t: [0] })),
  );
  assert.equal(await join.token, 12);
});
