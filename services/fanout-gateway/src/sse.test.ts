import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import type { IncomingMessage } from 'node:http';
import { signAccessToken } from '@ripple/auth';
import { RippleError } from '@ripple/errors';
import { listeningPort } from '@ripple/http';
import { waitUntil } from '@ripple/testing';
import { eventFrame } from './protocol.js';
import { SendBudget } from './send-budget.js';
import { singleNodeApp, singleNodeGateway, unitSecret } from './single-node.js';

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
