import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { signAccessToken } from '@ripple/auth';
import { RippleError } from '@ripple/errors';
import { listeningPort } from '@ripple/http';
import type { StreamPosition } from '@ripple/registry';
import { waitUntil } from '@ripple/testing';
import { eventFrame } from './protocol.js';
import { SendBudget } from './send-budget.js';
import {
  appendHistory,
  atEachHistoryRead,
  publishLive,
  singleNodeApp,
  singleNodeGateway,
  unitSecret,
} from './single-node.js';

test('a channel that fails to subscribe once an SSE stream started should get an error event naming it, and the stream go on', async (t) => {
  const g = singleNodeGateway({
    derived: {
      owns: (channel) => channel.startsWith('feed:'),
      join: () => Promise.reject(new RippleError('GW_FEED_UNAVAILABLE', 'post-service is away')),
      leave: () => Promise.resolve(),
    },
  });
  const app = await singleNodeApp(t, g);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const token = await signAccessToken(unitSecret, 'u1');
  // Ended in the test itself: the app's close (an `after` hook) waits for open streams.
  const abort = new AbortController();
  try {
    const res = await fetch(`http://127.0.0.1:${listeningPort(app)}/sse?channels=feed:u1`, {
      headers: { authorization: `Bearer ${token}` },
      signal: abort.signal,
    });
    assert.equal(res.status, 200);
    const events: { event: string; data: Record<string, unknown> }[] = [];
    assert.ok(res.body);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    while (!events.some((e) => e.event === 'error')) {
      const chunk = await reader.read();
      assert.ok(!chunk.done, `the stream ended after ${JSON.stringify(events)}`);
      text += chunk.value;
      let cut;
      while ((cut = text.indexOf('\n\n')) >= 0) {
        const block = text.slice(0, cut).split('\n');
        text = text.slice(cut + 2);
        const event = block.find((l) => l.startsWith('event: '))?.slice(7);
        const data = block.find((l) => l.startsWith('data: '))?.slice(6);
        if (event && data) events.push({ event, data: JSON.parse(data) as Record<string, unknown> });
      }
    }
    assert.deepEqual(
      events.map((e) => [e.event, e.data.channel]),
      [
        ['welcome', undefined],
        ['ack', 'user:u1'],
        ['error', 'feed:u1'],
      ],
    );
    assert.deepEqual(events[2]?.data, {
      op: 'error',
      channel: 'feed:u1',
      code: 'GW_FEED_UNAVAILABLE',
      message: 'post-service is away',
    });
    assert.equal(g.hub.subscriptionCount, 1, 'user:u1 stays subscribed: the stream goes on');
  } finally {
    abort.abort();
  }
});

test('an SSE stream should be counted in the send budget, and closed as a slow consumer when the budget stalls on it', async (t) => {
  const g = singleNodeGateway();
  const budget = new SendBudget({
    limitBytes: 64 * 1024,
    stallMs: 50,
    pollMs: 5,
  });
  // One stream may queue far more than the budget: only the budget closes it here.
  const app = await singleNodeApp(t, g, { sendBufferBytes: 256 * 1024 * 1024 }, budget);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const channel = 'creator:c1';
  const token = await signAccessToken(unitSecret, 'u1');
  const res = await new Promise<IncomingMessage>((resolve, reject) =>
    get(`http://127.0.0.1:${listeningPort(app)}/sse?channels=${channel}&access_token=${token}`, resolve).on(
      'error',
      reject,
    ),
  );
  // Ended in the test itself: the app's close (an `after` hook) waits for open streams.
  try {
    assert.equal(res.statusCode, 200);
    res.setEncoding('utf8');
    let text = '';
    res.on('data', (chunk: string) => (text += chunk));
    const ended = new Promise((resolve) => res.on('end', resolve));
    await waitUntil('the subscription', 5000, () => text.includes(`"channel":"${channel}"`));
    // The client stops reading; the kernel's buffers fill, then the response's.
    res.pause();
    const { epoch } = await g.history.position(channel);
    const pad = 'x'.repeat(8000);
    for (let offset = 1; offset <= 1000; offset++)
      g.hub.publish({
        channel,
        offset: String(offset),
        epoch,
        frame: eventFrame(channel, String(offset), epoch, JSON.stringify({ pad })),
      });
    assert.ok(budget.queuedBytes > 1024 * 1024, `the stream's queued bytes are counted (${budget.queuedBytes})`);
    assert.equal(budget.queueCount, 1);
    // A routed batch now waits; the stream does not drain, so the budget closes it when it stalls.
    await budget.admit();
    assert.equal(budget.queuedBytes, 0, 'its bytes left the budget');
    const closes = (await g.metrics.sendBudgetCloses.get()).values[0];
    assert.equal(closes?.value, 1);
    res.resume();
    await ended;
    assert.match(text.slice(-300), /event: error\ndata: \{"op":"error","code":"GW_SLOW_CONSUMER"/);
  } finally {
    res.destroy();
  }
});

/** One SSE event as the client parsed it: its name, its `id:` (if any) and its data's JSON. */
interface SseEvent {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: {
    op: string;
    channel?: string;
    offset?: string;
    code?: string;
    recovered?: boolean;
    replayed?: number;
  };
}

/** An open SSE stream: the events parsed as they arrive, whether it ended, and the response (to pause it). */
interface SseStream {
  readonly res: IncomingMessage;
  readonly events: SseEvent[];
  readonly state: { ended: boolean };
}

/**
 * Runs `body` with an SSE stream of `app` for u1 on `channels`, resuming from `lastEventId`
 * (`?last_event_id=`), and destroys the stream once it is done: the app's close (an `after` hook)
 * waits for open streams.
 */
async function withSseStream(
  app: Parameters<typeof listeningPort>[0],
  channels: string,
  lastEventId: string,
  body: (stream: SseStream) => Promise<void>,
): Promise<void> {
  const token = await signAccessToken(unitSecret, 'u1');
  const query = `channels=${channels}&access_token=${token}&last_event_id=${lastEventId}`;
  const url = `http://127.0.0.1:${listeningPort(app)}/sse?${query}`;
  const res = await new Promise<IncomingMessage>((resolve, reject) => get(url, resolve).on('error', reject));
  const events: SseEvent[] = [];
  const state = { ended: false };
  let text = '';
  res.setEncoding('utf8');
  res.on('data', (chunk: string) => {
    text += chunk;
    let cut;
    while ((cut = text.indexOf('\n\n')) >= 0) {
      const lines = text.slice(0, cut).split('\n');
      text = text.slice(cut + 2);
      const field = (name: string) => lines.find((l) => l.startsWith(`${name}: `))?.slice(name.length + 2);
      const event = field('event');
      const data = field('data');
      if (event !== undefined && data !== undefined)
        events.push({ event, id: field('id'), data: JSON.parse(data) as SseEvent['data'] });
    }
  });
  res.on('end', () => (state.ended = true));
  try {
    assert.equal(res.statusCode, 200);
    await body({ res, events, state });
  } finally {
    res.destroy();
  }
}

/** The `Last-Event-ID` of a stream that left each channel at its position (sse.ts's event id). */
function lastEventIdOf(positions: Record<string, { offset: string; epoch: string }>): string {
  const id = Object.fromEntries(Object.entries(positions).map(([c, p]) => [c, [p.offset, p.epoch]]));
  return Buffer.from(JSON.stringify(id)).toString('base64url');
}

const eventOffsets = (events: readonly SseEvent[]) =>
  events.filter((e) => e.event === 'event').map((e) => Number(e.data.offset));

test('a reading SSE client resuming with a replay several times its send buffer should get every event once, in order, then the live ones, in one stream', async (t) => {
  const g = singleNodeGateway();
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  // 90 events of ~8 KB: a replay of ~720 KB, eleven times the send buffer.
  const since = await appendHistory(g, 'creator:c0', 90, 8000);
  await withSseStream(app, 'creator:c0', lastEventIdOf({ 'creator:c0': since }), async ({ events, state }) => {
    const over = () => state.ended || events.some((e) => e.event === 'error');
    await waitUntil(
      'the ack',
      5000,
      () => events.some((e) => e.event === 'ack' && e.data.offset !== undefined) || over(),
    );
    // 10 live events (~33 KB with their ids): 20 came near the 64 KiB bound if the client lagged.
    publishLive(g, 'creator:c0', since.epoch, 90, 10);
    await waitUntil('100 events', 10_000, () => eventOffsets(events).length >= 100 || over());
    assert.deepEqual(
      events.filter((e) => e.event === 'error').map((e) => e.data.code),
      [],
      `no error event after ${eventOffsets(events).length} events`,
    );
    assert.deepEqual(
      eventOffsets(events),
      Array.from({ length: 100 }, (_, i) => i + 1),
    );
    assert.ok(!state.ended, 'the stream stays open');
    // The last event's id resumes the channel after it.
    const last = JSON.parse(Buffer.from(events.at(-1)?.id ?? '', 'base64url').toString('utf8')) as unknown;
    assert.deepEqual((last as Record<string, unknown>)['creator:c0'], ['100', since.epoch]);
  });
});

test('an SSE client that stops reading during a replay should still get GW_SLOW_CONSUMER once live events pile up behind it', async (t) => {
  const g = singleNodeGateway();
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const since = await appendHistory(g, 'creator:c0', 90, 8000);
  await withSseStream(app, 'creator:c0', lastEventIdOf({ 'creator:c0': since }), async ({ res, events, state }) => {
    res.pause();
    // Joined (or, before the fix, already closed by its replay and released).
    await waitUntil(
      'the subscription',
      5000,
      () => g.hub.channelNames().includes('creator:c0') || g.hub.subscriptionCount === 0,
    );
    // ~600 KB of live events, which come after the replay (held back until it is out) and are not read either.
    publishLive(g, 'creator:c0', since.epoch, 90, 200);
    await waitUntil('the release', 5000, () => g.hub.subscriptionCount === 0);
    res.resume();
    await waitUntil('the end', 10_000, () => state.ended);
    assert.deepEqual([events.at(-1)?.event, events.at(-1)?.data.code], ['error', 'GW_SLOW_CONSUMER']);
    const offsets = eventOffsets(events);
    assert.deepEqual(
      offsets,
      Array.from({ length: offsets.length }, (_, i) => i + 1),
      'an in-order prefix, once',
    );
  });
});

/**
 * An SSE client resuming `channelCount` channels, each a replay of 100 events (the history limit)
 * of ~80 KB (8 MB, more than the kernel's socket buffers take), stops reading: the replay must not
 * close the stream itself; it is counted in the send budget, closed GW_SLOW_CONSUMER when the
 * budget stalls on it.
 */
async function stalledReplayClosedByBudget(t: TestContext, channelCount: number): Promise<void> {
  const g = singleNodeGateway();
  const budget = new SendBudget({ limitBytes: 64 * 1024, stallMs: 50, pollMs: 5 });
  // A stream's own bound above an event's size: only the budget closes it here.
  const app = await singleNodeApp(t, g, { sendBufferBytes: 1024 * 1024, maxSubscriptions: 8 }, budget);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const channels = Array.from({ length: channelCount }, (_, i) => `creator:c${i}`);
  const since: Record<string, StreamPosition> = {};
  for (const c of channels) since[c] = await appendHistory(g, c, 100, 80_000);
  await withSseStream(app, channels.join(','), lastEventIdOf(since), async ({ res, events, state }) => {
    res.pause();
    await waitUntil('the replay', 5000, () => budget.queuedBytes > 1024 * 1024 || g.hub.subscriptionCount === 0);
    assert.ok(g.hub.channelNames().includes('creator:c0'), 'the replay did not close the stream');
    // A routed batch now waits; the stream does not drain, so the budget closes it when it stalls.
    await budget.admit();
    assert.equal(budget.queuedBytes, 0, 'its bytes left the budget');
    assert.equal((await g.metrics.sendBudgetCloses.get()).values[0]?.value, 1);
    res.resume();
    await waitUntil('the end', 10_000, () => state.ended);
    assert.deepEqual([events.at(-1)?.event, events.at(-1)?.data.code], ['error', 'GW_SLOW_CONSUMER']);
  });
}

test('an SSE client that stops reading during a replay should be counted in the send budget with it, and closed when the budget stalls on it', (t) =>
  stalledReplayClosedByBudget(t, 1));

/** The offsets of `channel`'s events in `events`, in the order they came. */
const channelOffsets = (events: readonly SseEvent[], channel: string) =>
  events.filter((e) => e.event === 'event' && e.data.channel === channel).map((e) => Number(e.data.offset));

test('a reading SSE client resuming five channels with one Last-Event-ID, each a replay several times its send buffer, should get every event once, in order per channel, then the live ones, in one stream', async (t) => {
  const g = singleNodeGateway();
  const budget = new SendBudget({ limitBytes: 1024 * 1024 * 1024, stallMs: 60_000 });
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024, maxSubscriptions: 8 }, budget);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const channels = Array.from({ length: 5 }, (_, i) => `creator:c${i}`);
  // Per channel 90 events of ~8 KB: a replay of ~720 KB, eleven times the send buffer; 3.6 MB in all.
  const since: Record<string, StreamPosition> = {};
  for (const c of channels) since[c] = await appendHistory(g, c, 90, 8000);
  const queuedAtRead = atEachHistoryRead(g, () => budget.queuedBytes);
  await withSseStream(app, channels.join(','), lastEventIdOf(since), async ({ events, state }) => {
    const over = () => state.ended || events.some((e) => e.event === 'error');
    const acks = () => events.filter((e) => e.event === 'ack' && e.data.recovered !== undefined);
    await waitUntil('the replays', 20_000, () => eventOffsets(events).length >= 5 * 90 || over());
    // Live events count against the send buffer: each channel's (~35 KB, ids of six channels
    // included) once the ones before were read.
    for (const [i, c] of channels.entries()) {
      publishLive(g, c, since[c]?.epoch ?? '', 90, 10);
      await waitUntil(
        `${c}'s live events`,
        10_000,
        () => eventOffsets(events).length >= 5 * 90 + (i + 1) * 10 || over(),
      );
    }
    assert.deepEqual(
      events.filter((e) => e.event === 'error').map((e) => e.data.code),
      [],
      `no error event after ${eventOffsets(events).length} events`,
    );
    assert.ok(!state.ended, 'the stream stays open');
    assert.deepEqual(
      acks().map((e) => [e.data.channel, e.data.recovered, e.data.replayed]),
      channels.map((c) => [c, true, 90]),
    );
    for (const c of channels)
      assert.deepEqual(
        channelOffsets(events, c),
        Array.from({ length: 100 }, (_, i) => i + 1),
        c,
      );
    // The last event's id resumes every channel after its last event.
    const last = JSON.parse(Buffer.from(events.at(-1)?.id ?? '', 'base64url').toString('utf8')) as Record<
      string,
      unknown
    >;
    for (const c of channels) assert.deepEqual(last[c], ['100', since[c]?.epoch], c);
    assert.ok(
      queuedAtRead.every((bytes) => bytes < 90 * 8000),
      `one replay held at a time: queued at each read ${queuedAtRead.join(', ')}`,
    );
  });
});

test('an SSE client that stops reading while it resumes five channels should still get GW_SLOW_CONSUMER once live events pile up, after an in-order prefix of each', async (t) => {
  const g = singleNodeGateway();
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024, maxSubscriptions: 8 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const channels = Array.from({ length: 5 }, (_, i) => `creator:c${i}`);
  const since: Record<string, StreamPosition> = {};
  for (const c of channels) since[c] = await appendHistory(g, c, 90, 8000);
  await withSseStream(app, channels.join(','), lastEventIdOf(since), async ({ res, events, state }) => {
    res.pause();
    // The first channel joined (or already ended and released).
    await waitUntil(
      'the subscription',
      5000,
      () => g.hub.channelNames().includes('creator:c0') || g.hub.subscriptionCount === 0,
    );
    // ~600 KB of live events per channel, not read either.
    for (const c of channels) publishLive(g, c, since[c]?.epoch ?? '', 90, 200);
    await waitUntil('the release', 5000, () => g.hub.subscriptionCount === 0);
    res.resume();
    await waitUntil('the end', 10_000, () => state.ended);
    assert.deepEqual([events.at(-1)?.event, events.at(-1)?.data.code], ['error', 'GW_SLOW_CONSUMER']);
    for (const c of channels) {
      const offsets = channelOffsets(events, c);
      assert.deepEqual(
        offsets,
        Array.from({ length: offsets.length }, (_, i) => i + 1),
        `${c}: an in-order prefix, once`,
      );
    }
  });
});

test('an SSE client that stops reading while it resumes five channels should be closed when the send budget stalls on it, not by its replays', (t) =>
  stalledReplayClosedByBudget(t, 5));

test('an SSE stream dropped during a resume of five channels should leave in its last id the positions of the channels not replayed yet, so the next stream recovers them all', async (t) => {
  const g = singleNodeGateway();
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024, maxSubscriptions: 8 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const channels = Array.from({ length: 5 }, (_, i) => `creator:c${i}`);
  const since: Record<string, StreamPosition> = {};
  for (const c of channels) since[c] = await appendHistory(g, c, 90, 8000);
  let lastId = '';
  const got: SseEvent[] = [];
  // The first stream drops (the client goes away) after ten events of the first channel's replay.
  await withSseStream(app, channels.join(','), lastEventIdOf(since), async ({ events, state }) => {
    await waitUntil('ten events', 10_000, () => eventOffsets(events).length >= 10 || state.ended);
    const tenth = events.filter((e) => e.event === 'event')[9];
    assert.ok(tenth?.id, 'the tenth event has an id');
    lastId = tenth.id;
    got.push(...events.filter((e) => e.event === 'event').slice(0, 10));
  });
  await waitUntil('the release', 5000, () => g.hub.subscriptionCount === 0);
  await withSseStream(app, channels.join(','), lastId, async ({ events, state }) => {
    const acks = () => events.filter((e) => e.event === 'ack' && e.data.channel !== 'user:u1');
    await waitUntil('the acks', 20_000, () => acks().length >= 5 || state.ended);
    assert.deepEqual(
      acks().map((e) => [e.data.channel, e.data.recovered]),
      channels.map((c) => [c, true]),
    );
    await waitUntil('the rest', 20_000, () => eventOffsets(events).length >= 5 * 90 - 10 || state.ended);
    got.push(...events.filter((e) => e.event === 'event'));
  });
  for (const c of channels)
    assert.deepEqual(
      channelOffsets(got, c),
      Array.from({ length: 90 }, (_, i) => i + 1),
      c,
    );
});
