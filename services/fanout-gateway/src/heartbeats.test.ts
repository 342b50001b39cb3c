import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { Heartbeats } from './heartbeats.js';

function fakeSocket() {
  return {
    pings: 0,
    terminated: false,
    ping() {
      this.pings += 1;
    },
    terminate() {
      this.terminated = true;
    },
  };
}

test('heartbeats should ping each socket once per interval and terminate one silent for two intervals', (t) => {
  mock.timers.enable({ apis: ['setInterval'] });
  t.after(() => mock.timers.reset());
  let terminations = 0;
  const beats = new Heartbeats(1000, { slots: 10, onTerminate: () => (terminations += 1) });
  t.after(() => beats.stop());
  const live = fakeSocket();
  const silent = fakeSocket();
  beats.add(live);
  mock.timers.tick(500);
  beats.add(silent);
  mock.timers.tick(500);
  assert.deepEqual([live.pings, silent.pings], [1, 0], 'the first ping goes one interval after add');
  beats.answered(live);
  mock.timers.tick(500);
  assert.deepEqual([live.pings, silent.pings], [1, 1]);
  mock.timers.tick(500);
  beats.answered(live);
  assert.deepEqual([live.pings, live.terminated], [2, false]);
  mock.timers.tick(500);
  assert.deepEqual([silent.pings, silent.terminated], [2, false], 'one unanswered ping is not enough');
  mock.timers.tick(1000);
  beats.answered(live);
  assert.equal(silent.terminated, true, 'no pong for two pings');
  assert.equal(terminations, 1, 'each termination is counted');
  assert.equal(beats.size, 1);
  for (let i = 0; i < 5; i++) {
    mock.timers.tick(1000);
    beats.answered(live);
  }
  assert.deepEqual([live.pings, live.terminated], [8, false]);
});

test('heartbeats should keep a socket whose pong comes one interval late, or whose peer sends frames', (t) => {
  mock.timers.enable({ apis: ['setInterval'] });
  t.after(() => mock.timers.reset());
  const beats = new Heartbeats(1000, { slots: 1 });
  t.after(() => beats.stop());
  const late = fakeSocket();
  const chatty = fakeSocket();
  beats.add(late);
  beats.add(chatty);
  mock.timers.tick(2000); // two pings, no answer yet
  beats.answered(late); // the late pong
  for (let i = 0; i < 10; i++) {
    beats.answered(chatty); // e.g. the SDK's own {"op":"ping"} each heartbeat; its pongs are lost
    mock.timers.tick(1000);
    if (i % 2 === 0) beats.answered(late);
  }
  assert.deepEqual([late.terminated, chatty.terminated], [false, false]);
});

test('heartbeats should forget a removed socket', (t) => {
  mock.timers.enable({ apis: ['setInterval'] });
  t.after(() => mock.timers.reset());
  const beats = new Heartbeats(1000, { slots: 4 });
  t.after(() => beats.stop());
  const socket = fakeSocket();
  beats.add(socket);
  mock.timers.tick(1000);
  beats.remove(socket);
  mock.timers.tick(3000);
  assert.deepEqual([socket.pings, socket.terminated, beats.size], [1, false, 0]);
});

test('heartbeats should spread sockets that connect at once over the ticks, so no tick pings more than its share', (t) => {
  mock.timers.enable({ apis: ['setInterval'] });
  t.after(() => mock.timers.reset());
  const beats = new Heartbeats(1000, { slots: 10 });
  t.after(() => beats.stop());
  const storm = Array.from({ length: 1000 }, () => fakeSocket()); // a reconnect storm: all in one tick
  for (const socket of storm) beats.add(socket);
  const perTick: number[] = [];
  let before = 0;
  for (let tick = 0; tick < 10; tick++) {
    mock.timers.tick(100);
    const pinged = storm.reduce((n, s) => n + s.pings, 0);
    perTick.push(pinged - before);
    before = pinged;
  }
  assert.deepEqual(
    perTick,
    Array.from({ length: 10 }, () => 100),
    'each tick pings a tenth of them',
  );
  assert.ok(
    storm.every((s) => s.pings === 1),
    'each socket is pinged once per interval',
  );
});

test('heartbeats should tick every 100 ms by default, whatever the interval', (t) => {
  mock.timers.enable({ apis: ['setInterval'] });
  t.after(() => mock.timers.reset());
  const beats = new Heartbeats(25_000);
  t.after(() => beats.stop());
  const storm = Array.from({ length: 500 }, () => fakeSocket());
  for (const socket of storm) beats.add(socket);
  mock.timers.tick(100);
  assert.equal(
    storm.reduce((n, s) => n + s.pings, 0),
    2,
    'one 250th of the sockets per 100 ms tick',
  );
  mock.timers.tick(24_900);
  assert.ok(storm.every((s) => s.pings === 1));
});
