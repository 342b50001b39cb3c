import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { DeadlineQueue, MAX_TIMER_MS, repeat } from './timers.js';

/** A task whose runs end when the test says so. */
function controlledTask() {
  const ends: (() => void)[] = [];
  return {
    ends,
    get runs() {
      return ends.length;
    },
    run: () => new Promise<void>((resolve) => ends.push(resolve)),
  };
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

test('repeat should not start a run while the previous one is in flight, and start the next as soon as it ends', async (t) => {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  let clock = 0;
  const task = controlledTask();
  const repeating = repeat(
    task.run,
    500,
    (err) => assert.fail(String(err)),
    () => clock,
  );
  const advance = (ms: number) => {
    clock += ms;
    mock.timers.tick(ms);
  };
  advance(499);
  assert.equal(task.runs, 0, 'the first run comes one interval from now');
  advance(1);
  assert.equal(task.runs, 1);
  advance(2000);
  assert.equal(task.runs, 1, 'a slow run holds the next back');
  task.ends[0]?.();
  await settle();
  advance(0);
  assert.equal(task.runs, 2, 'the next run starts once the slow one ended');
  advance(100);
  task.ends[1]?.();
  await settle();
  advance(399);
  assert.equal(task.runs, 2, 'a quick run keeps the interval');
  advance(1);
  assert.equal(task.runs, 3);
  const stopped = repeating.stop();
  task.ends[2]?.();
  await stopped;
  advance(5000);
  assert.equal(task.runs, 3, 'no run after stop');
});

test('repeat should go on after a run that failed, passing its error on', async (t) => {
  mock.timers.enable({ apis: ['setTimeout'] });
  t.after(() => mock.timers.reset());
  const errors: unknown[] = [];
  let runs = 0;
  const repeating = repeat(
    () => {
      runs += 1;
      return Promise.reject(new Error(`run ${runs}`));
    },
    100,
    (err) => errors.push(err),
    () => 0,
  );
  t.after(() => repeating.stop());
  mock.timers.tick(100);
  await settle();
  mock.timers.tick(100);
  await settle();
  assert.equal(runs, 2);
  assert.deepEqual(
    errors.map((e) => (e as Error).message),
    ['run 1', 'run 2'],
  );
});

test('a deadline queue should fire each deadline at its ms, in deadline order, on one timer', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
  const fired: string[] = [];
  const queue = new DeadlineQueue<string>((name) => fired.push(name));
  queue.schedule(300, 'c');
  queue.schedule(100, 'a');
  const cancelled = queue.schedule(150, 'x');
  queue.schedule(200, 'b');
  queue.schedule(200, 'b2');
  cancelled.cancel();
  cancelled.cancel();
  assert.equal(queue.size, 4);
  t.mock.timers.tick(99);
  assert.deepEqual(fired, []);
  t.mock.timers.tick(1);
  assert.deepEqual(fired, ['a']);
  t.mock.timers.tick(100);
  assert.deepEqual(fired.slice(1).sort(), ['b', 'b2']);
  t.mock.timers.tick(99);
  assert.equal(fired.length, 3);
  t.mock.timers.tick(1);
  assert.deepEqual(fired.at(-1), 'c');
  assert.equal(queue.size, 0);
});

test('a deadline queue should wait out delays beyond the timer maximum, and take negative ones as now', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_700_000_000_000 });
  const fired: number[] = [];
  const queue = new DeadlineQueue<number>((n) => fired.push(n));
  queue.schedule(3 * MAX_TIMER_MS, 1);
  queue.schedule(-5, 0);
  t.mock.timers.tick(0);
  assert.deepEqual(fired, [0]);
  t.mock.timers.tick(3 * MAX_TIMER_MS - 1);
  assert.deepEqual(fired, [0]);
  t.mock.timers.tick(1);
  assert.deepEqual(fired, [0, 1]);
});

test('a deadline queue should keep order through many schedules and cancels (a heap, checked against a sort)', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  const fired: number[] = [];
  const queue = new DeadlineQueue<number>((at) => fired.push(at));
  let seed = 7;
  const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const kept: number[] = [];
  for (let i = 0; i < 500; i++) {
    const at = Math.floor(random() * 10_000);
    const timer = queue.schedule(at, at);
    if (random() < 0.3) timer.cancel();
    else kept.push(at);
  }
  t.mock.timers.tick(10_000);
  assert.deepEqual(
    fired,
    kept.sort((a, b) => a - b),
  );
});
