import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { repeat } from './timers.js';

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
