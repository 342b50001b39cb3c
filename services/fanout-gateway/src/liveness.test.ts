import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Liveness } from './liveness.js';

test('a peer whose pong comes one interval late should not be dropped', () => {
  const peer = new Liveness();
  assert.equal(peer.tick(), 'ping'); // first ping out
  assert.equal(peer.tick(), 'ping'); // no pong yet: ping again, no drop
  peer.seen(); // the late pong
  assert.equal(peer.tick(), 'ping');
  assert.equal(peer.tick(), 'ping');
});

test('a peer that sends frames but whose pongs are lost should be kept', () => {
  const peer = new Liveness();
  for (let i = 0; i < 10; i++) {
    peer.seen(); // e.g. the SDK's own {"op":"ping"} every heartbeat
    assert.equal(peer.tick(), 'ping');
  }
});

test('a silent peer should be dropped after the grace intervals', () => {
  const peer = new Liveness(2);
  assert.deepEqual([peer.tick(), peer.tick(), peer.tick()], ['ping', 'ping', 'dead']);
});
