import { test } from 'node:test';
import assert from 'node:assert/strict';
import { signAccessToken } from '@ripple/auth';
import { RippleError } from '@ripple/errors';
import { listeningPort } from '@ripple/http';
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
