import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BacklogShedder } from './backlog-shedder.js';

const MAX_WAIT_MS = 1000;

/** A shedder on a clock the test moves, and a relay driver that publishes batches on it. */
function relayWithShedder(maxWaitMs = MAX_WAIT_MS) {
  let now = 1_000_000;
  const shedder = new BacklogShedder({ maxWaitMs, now: () => now });
  return {
    shedder,
    advance(ms: number) {
      now += ms;
    },
    /** One batch acknowledged `ms` after it was sent; its oldest row was written `age` ms before the send. */
    batch(age: number, ms = 50) {
      shedder.sending(now - age);
      now += ms;
      shedder.acknowledged();
    },
    /**
     * 100 ms batches whose oldest row is `age` ms old, then 60 ms older each time (pace 0.4),
     * until the shedder refuses writes (it must before the rows are 5 s old).
     */
    fallBehindUntilShedding(age: number) {
      for (; !shedder.shouldShed(); age += 60) {
        assert.ok(age < 5000, 'sheds');
        this.batch(age, 100);
      }
    },
  };
}

test('outbox shedding should not refuse writes while the relay keeps up', () => {
  const r = relayWithShedder();
  for (let i = 0; i < 100; i++) {
    r.batch(20);
    r.shedder.idle();
    assert.equal(r.shedder.shouldShed(), false);
  }
});

test('outbox shedding should refuse writes once a write made now would wait longer than the bound, and keep refusing', () => {
  const r = relayWithShedder();
  // Each 100 ms batch goes through rows written over 30 ms (pace 0.3): the lag grows by 70 ms per
  // batch, and a row written now waits lag / 0.3 for the relay.
  const answers: [number, boolean][] = [];
  for (let age = 0; age < 2500; age += 70) {
    r.batch(age, 100);
    // The lag as the shedder sees it once the batch is acknowledged.
    answers.push([age + 100, r.shedder.shouldShed()]);
  }
  const first = answers.findIndex(([, shed]) => shed);
  const [lag] = answers[first] ?? [0];
  assert.ok(first >= 0, 'shed at some point');
  assert.ok(lag / 0.3 > MAX_WAIT_MS, `not before the wait passed the bound (lag ${lag} ms)`);
  // Before the lag itself reaches M/2: a write accepted just before waits about M, not more.
  assert.ok(lag < MAX_WAIT_MS / 2, `ahead of the lag (lag ${lag} ms)`);
  assert.deepEqual(
    answers.slice(first).filter(([, shed]) => !shed),
    [],
    'refused from then on while the relay falls further behind',
  );
});

test('outbox shedding should keep refusing until the wait falls to half the bound, then take writes again', () => {
  const r = relayWithShedder();
  r.fallBehindUntilShedding(900);
  // Catching up now: each batch's oldest row is 100 ms younger (pace 2: a write waits its lag, at
  // most). Hysteresis: refused down to M/2.
  const answers: [number, boolean][] = [];
  for (let age = 1100; age >= 0; age -= 100) {
    r.batch(age, 100);
    answers.push([age + 100, r.shedder.shouldShed()]);
  }
  for (const [lag, shed] of answers) assert.equal(shed, lag > MAX_WAIT_MS / 2, `lag ${lag} ms`);
  // And it does not flap back on at once: under the bound again, writes stay accepted.
  r.batch(700, 100);
  assert.equal(r.shedder.shouldShed(), false);
});

test('outbox shedding should not refuse writes while the relay catches up on a backlog faster than real time', () => {
  // After a Kafka outage: rows up to a minute old, gone through at ten times the rate they were written.
  const r = relayWithShedder();
  r.shedder.failed();
  for (let age = 60_000; age > 0; age -= 900) {
    r.batch(age, 100);
    assert.equal(r.shedder.shouldShed(), false, `lag ${age} ms, falling`);
  }
});

test('outbox shedding should not refuse writes while the relay cannot publish (Kafka away)', () => {
  const r = relayWithShedder();
  r.fallBehindUntilShedding(100);
  // The next batch fails: the outbox takes writes while Kafka is away, however old its rows get.
  r.shedder.sending(0);
  r.shedder.failed();
  for (let i = 0; i < 20; i++) {
    r.advance(1000);
    r.shedder.sending(0);
    r.shedder.failed();
    assert.equal(r.shedder.shouldShed(), false);
  }
});

test('outbox shedding should stop refusing writes when a send hangs longer than the bound', () => {
  const r = relayWithShedder();
  r.fallBehindUntilShedding(100);
  // A broker that stopped answering: the send neither succeeds nor fails for seconds.
  r.shedder.sending(0);
  r.advance(MAX_WAIT_MS + 1);
  assert.equal(r.shedder.shouldShed(), false);
});

test('outbox shedding should not take a send that hung for its pace: the relay catching up afterwards takes writes', () => {
  // Keeping up (rows 20 ms old), then the broker stops answering for 8 s while writes go on at the
  // same rate; its first answer acknowledges the batch sent before the hang. The relay then goes
  // through the 8 s of rows written meanwhile at five times the rate they were written.
  const r = relayWithShedder();
  for (let i = 0; i < 20; i++) r.batch(20);
  r.batch(20, 8000);
  const answers: boolean[] = [];
  for (let lag = 8000; lag > 100; lag -= 400) {
    r.batch(lag, 100);
    answers.push(r.shedder.shouldShed());
  }
  assert.deepEqual(
    answers.filter((shed) => shed),
    [],
    'the hang (0.05 s of rows in 8 s) is an outage, not the pace of the catch-up after it',
  );
});

test('outbox shedding should never refuse writes before the relay started, nor with a bound of 0', () => {
  const before = relayWithShedder();
  before.advance(60_000);
  assert.equal(before.shedder.shouldShed(), false);
  const off = relayWithShedder(0);
  let age = 100;
  for (let i = 0; i < 200; i++, age += 60) {
    off.batch(age, 100);
    assert.equal(off.shedder.shouldShed(), false);
  }
});

/**
 * A service in simulated time, 1 ms steps: a write is offered every ms and taken unless the
 * shedder refuses it; the relay publishes `batchRows` of the oldest unsent rows per batch, each
 * acknowledged `batchMs` after it was sent (so it goes through batchRows / batchMs rows per ms).
 * Returns how many writes were taken and refused, and the longest wait (written → acknowledged,
 * ms) of a write taken after the first time the shedder took writes again.
 */
function overloadedService(opts: { batchRows: number; batchMs: number; seconds: number }) {
  let now = 1_000_000;
  const shedder = new BacklogShedder({ maxWaitMs: MAX_WAIT_MS, now: () => now });
  const unsent: number[] = [];
  let inFlight: { rows: number[]; ackAt: number } | undefined;
  let recoveredAt: number | undefined;
  let shedding = false;
  let longest = 0;
  let taken = 0;
  let refused = 0;
  for (const end = now + opts.seconds * 1000; now < end; now++) {
    if (inFlight && now >= inFlight.ackAt) {
      shedder.acknowledged();
      for (const writtenAt of inFlight.rows)
        if (recoveredAt !== undefined && writtenAt >= recoveredAt) longest = Math.max(longest, now - writtenAt);
      inFlight = undefined;
    }
    const shed = shedder.shouldShed();
    if (shedding && !shed) recoveredAt ??= now;
    shedding = shed;
    if (shed) refused++;
    else {
      unsent.push(now);
      taken++;
    }
    if (!inFlight) {
      if (unsent.length === 0) shedder.idle();
      else {
        const rows = unsent.splice(0, opts.batchRows);
        shedder.sending(rows[0] ?? now);
        inFlight = { rows, ackAt: now + opts.batchMs };
      }
    }
  }
  return { longest, taken, refused, recovered: recoveredAt !== undefined };
}

test('outbox shedding should hold writes taken after a recovery to about the bound when the relay has a tenth of the capacity', () => {
  // 1,000 writes/s offered, the relay takes 100/s (one row per 10 ms batch): nine writes in ten
  // are refused, and a write taken once the shedder took writes again reaches Kafka within about
  // the bound. Validator F5: the relay's empty read after the refusals made the shedder forget its
  // pace, and it took writes for a whole window (M/2) before it measured the pace again: a row
  // taken then waited 4.5 s, each time it recovered. (The first time, before any pace was
  // measured, it still takes writes for that first window.)
  const { longest, taken, refused, recovered } = overloadedService({ batchRows: 1, batchMs: 10, seconds: 30 });
  assert.ok(recovered, 'took writes again at some point');
  assert.ok(refused > 5 * taken, `most writes refused (${taken} taken, ${refused} refused)`);
  assert.ok(taken > 30 * 100 * 0.8, `the relay's capacity used (${taken} taken)`);
  assert.ok(
    longest <= MAX_WAIT_MS * 1.2,
    `longest wait of a write taken after a recovery ${longest} ms, bound ${MAX_WAIT_MS} ms`,
  );
});
