import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { WebSocket } from 'ws';
import { LocalHub } from './hub.js';
import { Session } from './session.js';
import { eventFrame, parseClientFrame } from './protocol.js';

/** The part of a ws socket a Session uses; `bufferedAmount` is settable to simulate a slow peer. */
function fakeSocket() {
  const socket = {
    OPEN: 1,
    readyState: 1,
    bufferedAmount: 0,
    sent: [] as string[],
    closed: undefined as { code: number; reason: string } | undefined,
    send(frame: string) {
      socket.sent.push(frame);
    },
    close(code: number, reason: string) {
      socket.closed = { code, reason };
      socket.readyState = 3;
    },
  };
  return socket;
}

function session(hub: LocalHub, user = 'u1', limits = { maxSubscriptions: 3, sendBufferBytes: 1000 }) {
  const socket = fakeSocket();
  const errors: string[] = [];
  let slow = 0;
  const s = new Session('c1', { sub: user, exp: undefined }, socket as unknown as WebSocket, hub, limits, {
    onError: (code) => errors.push(code),
    onSlowConsumer: () => (slow += 1),
  });
  const frames = () => socket.sent.map((f) => JSON.parse(f) as Record<string, unknown>);
  return { s, socket, errors, frames, slow: () => slow };
}

test('parseClientFrame should accept the documented ops and name what is wrong otherwise', () => {
  assert.deepEqual(parseClientFrame('{"op":"ping","id":"1"}'), { op: 'ping', id: '1' });
  assert.equal(parseClientFrame('{"op":"subscribe","channel":"creator:u1"}').op, 'subscribe');
  const codeOf = (text: string) => {
    try {
      parseClientFrame(text);
      return 'ok';
    } catch (err) {
      return (err as { code: string }).code;
    }
  };
  assert.equal(codeOf('nope'), 'GW_BAD_JSON');
  assert.equal(codeOf('[1]'), 'GW_BAD_FRAME');
  assert.equal(codeOf('null'), 'GW_BAD_FRAME');
  assert.equal(codeOf('{"op":"dance"}'), 'GW_UNKNOWN_OP');
  assert.equal(codeOf('{"op":"subscribe"}'), 'GW_BAD_FRAME');
  assert.equal(codeOf('{"op":"ping","extra":true}'), 'GW_BAD_FRAME');
});

test('a session should ack a subscription and receive the frames published on that channel', () => {
  const hub = new LocalHub();
  const { s, frames } = session(hub);
  s.handleText('{"op":"subscribe","id":"a","channel":"creator:u9"}');
  assert.deepEqual(frames()[0], { op: 'ack', id: 'a', channel: 'creator:u9' });
  assert.equal(hub.publish('creator:u9', eventFrame('creator:u9', '{"id":"e1"}')), 1);
  assert.deepEqual(frames()[1], { op: 'event', channel: 'creator:u9', event: { id: 'e1' } });
  s.handleText('{"op":"unsubscribe","id":"b","channel":"creator:u9"}');
  assert.equal(hub.publish('creator:u9', eventFrame('creator:u9', '{}')), 0);
  assert.equal(hub.subscriptionCount, 0);
});

test('a session should refuse another user channel and subscriptions over the limit', () => {
  const hub = new LocalHub();
  const { s, errors } = session(hub);
  s.handleText('{"op":"subscribe","id":"x","channel":"user:u2"}');
  for (const c of ['post:1', 'post:2', 'post:3', 'post:4'])
    s.handleText(JSON.stringify({ op: 'subscribe', channel: c }));
  assert.deepEqual(errors, ['GW_SUBSCRIBE_FORBIDDEN', 'GW_TOO_MANY_SUBSCRIPTIONS']);
  assert.equal(hub.subscriptionCount, 3);
});

test('a session whose send buffer overflows should be closed with 4009 and forget its subscriptions', () => {
  const hub = new LocalHub();
  const { s, socket, slow } = session(hub);
  s.handleText('{"op":"subscribe","channel":"post:1"}');
  socket.bufferedAmount = 5000;
  hub.publish('post:1', eventFrame('post:1', '{}'));
  assert.deepEqual(socket.closed, { code: 4009, reason: 'slow consumer' });
  assert.equal(slow(), 1);
  assert.equal(hub.subscriptionCount, 0);
});
