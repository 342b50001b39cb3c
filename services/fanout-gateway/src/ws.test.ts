import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import { signAccessToken } from '@ripple/auth';
import { listeningPort } from '@ripple/http';
import type { StreamPosition } from '@ripple/registry';
import { webSocketHandshake } from '@ripple/testing';
import { eventFrame } from './protocol.js';
import { SendBudget } from './send-budget.js';
import {
  appendHistory,
  atEachHistoryRead,
  publishLive,
  singleNodeApp,
  singleNodeGateway,
  unitSecret as secret,
} from './single-node.js';

test('the 101 answer and welcome should leave the gateway in one write', async (t) => {
  // Registration takes a while (as a Redis round trip does): the 101 must wait for the welcome.
  const app = await singleNodeApp(t, singleNodeGateway({ setupDelayMs: 100 }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const token = await signAccessToken(secret, 'u1');
  const tcp = connect(listeningPort(app), '127.0.0.1');
  t.after(() => tcp.destroy());
  tcp.write(webSocketHandshake(`/ws?access_token=${token}`));
  const first = await new Promise<string>((resolve, reject) => {
    tcp.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1')));
    tcp.once('error', reject);
  });
  assert.match(first, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
  assert.match(first, /\r\n\r\n\x81.{1,3}\{"op":"welcome"/s, 'the welcome frame follows the 101 in the same chunk');
});

test('frames for a socket that does not read should wait beyond its buffer, in order, and all arrive once it reads', async (t) => {
  const g = singleNodeGateway();
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024 * 1024 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const client = new WebSocket(
    `ws://127.0.0.1:${listeningPort(app)}/ws?access_token=${await signAccessToken(secret, 'u1')}`,
  );
  t.after(() => client.terminate());
  const offsets: number[] = [];
  const welcomed = new Promise<void>((resolve) =>
    client.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as { op: string; offset?: string };
      if (frame.op === 'welcome') resolve();
      if (frame.op === 'event') offsets.push(Number(frame.offset));
    }),
  );
  await welcomed;
  const tcp = (client as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  tcp.pause();
  // 8 MB in one tick: more than the kernel's socket buffers take while the peer does not read.
  const count = 4000;
  const event = JSON.stringify({ pad: 'x'.repeat(2000) });
  const { epoch } = await g.history.position('user:u1');
  for (let i = 1; i <= count; i++) {
    const offset = String(i);
    g.hub.publish({ channel: 'user:u1', offset, epoch, frame: eventFrame('user:u1', offset, epoch, event) });
  }
  await new Promise<void>((resolve) => setImmediate(resolve)); // the tick's writes are out
  const [server] = app.websocketServer.clients;
  assert.ok(server);
  // What `ws` and the TCP socket hold is about one high-water mark, not the whole backlog.
  const socketHolds = (server as unknown as { _socket: { writableLength: number } })._socket.writableLength;
  assert.ok(socketHolds < 64 * 1024, `the TCP socket holds ${socketHolds} bytes`);
  tcp.resume();
  const deadline = Date.now() + 20_000;
  while (offsets.length < count && Date.now() < deadline) await new Promise<void>((r) => setTimeout(r, 20));
  assert.equal(offsets.length, count);
  assert.ok(
    offsets.every((o, i) => o === i + 1),
    'in order',
  );
});

test('a ws client should read event frames of every header size, multi-byte text included, between the frames ws sends', async (t) => {
  const g = singleNodeGateway();
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024 * 1024 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const client = new WebSocket(
    `ws://127.0.0.1:${listeningPort(app)}/ws?access_token=${await signAccessToken(secret, 'u1')}`,
  );
  t.after(() => client.terminate());
  const received: { op: string; offset?: string; event?: { body: string } }[] = [];
  const welcomed = new Promise<void>((resolve) =>
    client.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as { op: string };
      received.push(frame);
      if (frame.op === 'welcome') resolve();
    }),
  );
  await welcomed;
  // Event bodies whose frames need 2-, 4- and 10-byte headers, with a `ping` answered (by `ws`'s
  // Sender) between them in the same tick.
  const bodies = ['é', 'ü'.repeat(40_000), '🎉'.repeat(20_000), 'x'];
  const { epoch } = await g.history.position('user:u1');
  bodies.forEach((body, i) => {
    const offset = String(i + 1);
    g.hub.publish({
      channel: 'user:u1',
      offset,
      epoch,
      frame: eventFrame('user:u1', offset, epoch, JSON.stringify({ body })),
    });
    if (i === 1) client.send(JSON.stringify({ op: 'ping', id: 'p' }));
  });
  const deadline = Date.now() + 10_000;
  while (received.length < bodies.length + 2 && Date.now() < deadline)
    await new Promise<void>((r) => setTimeout(r, 10));
  const events = received.filter((f) => f.op === 'event');
  assert.deepEqual(
    events.map((f) => f.event?.body),
    bodies,
  );
  assert.deepEqual(
    events.map((f) => f.offset),
    ['1', '2', '3', '4'],
  );
  assert.ok(received.some((f) => f.op === 'pong'));
});

/** A client of `app` for user `u1`, and the frames it received (its close last); resolves once welcomed. */
async function welcomedClient(
  t: { after(fn: () => void): void },
  app: Awaited<ReturnType<typeof singleNodeApp>>,
): Promise<{ op: string; offset?: string; epoch?: string; code?: number }[]> {
  const client = new WebSocket(
    `ws://127.0.0.1:${listeningPort(app)}/ws?access_token=${await signAccessToken(secret, 'u1')}`,
  );
  t.after(() => client.terminate());
  const frames: { op: string; offset?: string; code?: number }[] = [];
  client.on('close', (code: number) => frames.push({ op: 'close', code }));
  await new Promise<void>((resolve) =>
    client.on('message', (data: Buffer) => {
      const frame = JSON.parse(data.toString()) as { op: string };
      frames.push(frame);
      if (frame.op === 'welcome') resolve();
    }),
  );
  return frames;
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check() && Date.now() < deadline) await new Promise<void>((r) => setTimeout(r, 10));
}

test("a channel's frames of one tick should leave each of its sockets as one write, the same Buffer for all, in order between other frames", async (t) => {
  const g = singleNodeGateway();
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024 * 1024 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const clients = [await welcomedClient(t, app), await welcomedClient(t, app)];
  const writes = [...app.websocketServer.clients].map((server) => {
    const tcp = (server as unknown as { _socket: { write(chunk: unknown, ...rest: unknown[]): boolean } })._socket;
    const seen: unknown[] = [];
    const write = tcp.write.bind(tcp);
    tcp.write = (chunk: unknown, ...rest: unknown[]) => {
      seen.push(chunk);
      return write(chunk, ...rest);
    };
    return seen;
  });
  const { epoch } = await g.history.position('user:u1');
  const publish = (offset: string, at = epoch) =>
    g.hub.publish({ channel: 'user:u1', offset, epoch: at, frame: eventFrame('user:u1', offset, at, '{"n":1}') });
  for (const offset of ['1', '2', '3']) publish(offset);
  // A later epoch: a `gap` frame (written by ws) between the run and the next event, in one tick.
  const later = `${epoch}z`;
  publish('1', later);
  await until(() => clients.every((frames) => frames.length >= 6));
  for (const frames of clients) {
    assert.deepEqual(
      frames.slice(1).map((f) => `${f.op}:${f.offset ?? ''}:${f.epoch === later ? 'later' : ''}`),
      ['event:1:', 'event:2:', 'event:3:', 'gap:0:later', 'event:1:later'],
    );
  }
  const [first, second] = writes;
  assert.ok(first?.[0] instanceof Buffer && first[0] === second?.[0], 'one Buffer shared by both sockets');
  assert.deepEqual(
    (first[0] as Buffer).toString('latin1').match(/"offset":"\d"/g),
    ['"offset":"1"', '"offset":"2"', '"offset":"3"'],
    'the three events in one write',
  );
});

test('a connection closed in the tick of its run should send the run before the close', async (t) => {
  const g = singleNodeGateway();
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024 * 1024 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const frames = await welcomedClient(t, app);
  const { epoch } = await g.history.position('user:u1');
  for (const offset of ['1', '2', '3'])
    g.hub.publish({ channel: 'user:u1', offset, epoch, frame: eventFrame('user:u1', offset, epoch, '{"n":1}') });
  for (const connection of g.connections.all()) connection.moveAway();
  await until(() => frames.some((f) => f.op === 'close'));
  assert.deepEqual(
    frames.slice(1).map((f) => `${f.op}:${f.offset ?? f.code ?? ''}`),
    ['event:1', 'event:2', 'event:3', 'reconnect:', 'close:1001'],
  );
});

/**
 * A client of `app` for user `u1` subscribed to `channels` (ack'd), recording every frame it reads
 * (its close last); `tcp` is its socket, to pause and resume reading.
 */
async function subscribedClient(t: { after(fn: () => void): void }, app: FastifyInstance, channels: readonly string[]) {
  const client = new WebSocket(
    `ws://127.0.0.1:${listeningPort(app)}/ws?access_token=${await signAccessToken(secret, 'u1')}`,
  );
  t.after(() => client.terminate());
  const frames: { op: string; channel?: string; offset?: string; epoch?: string; code?: number }[] = [];
  client.on('close', (code: number) => frames.push({ op: 'close', code }));
  client.on('message', (data: Buffer) => frames.push(JSON.parse(data.toString()) as { op: string }));
  await until(() => frames.some((f) => f.op === 'welcome'));
  channels.forEach((channel, i) => client.send(JSON.stringify({ op: 'subscribe', id: `s${i}`, channel })));
  await until(() => frames.filter((f) => f.op === 'ack').length === channels.length);
  const tcp = (client as unknown as { _socket: { pause(): void; resume(): void } })._socket;
  return { client, frames, tcp };
}

test('a socket on many channels whose buffer fills mid-run over several ticks should get every frame once, in order per channel, gaps included', async (t) => {
  const g = singleNodeGateway({ limits: { maxSubscriptions: 20 } });
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024 * 1024, maxSubscriptions: 20 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const channels = Array.from({ length: 12 }, (_, i) => `creator:c${i}`);
  const slow = await subscribedClient(t, app, channels);
  const fast = await subscribedClient(t, app, channels);
  const epochs = new Map<string, string>();
  for (const c of channels) epochs.set(c, (await g.history.position(c)).epoch);
  const expected = new Map<string, string[]>(channels.map((c) => [c, []]));
  const next = new Map<string, number>(channels.map((c) => [c, 1]));
  const publish = (channel: string, pad: number) => {
    const epoch = epochs.get(channel) as string;
    const offset = String(next.get(channel));
    next.set(channel, Number(offset) + 1);
    expected.get(channel)?.push(`${offset}@${epoch}`);
    g.hub.publish({
      channel,
      offset,
      epoch,
      frame: eventFrame(channel, offset, epoch, JSON.stringify({ pad: 'x'.repeat(pad) })),
    });
  };
  slow.tcp.pause();
  // Five ticks of ~1.5 MB each: runs of every channel (consecutive events of one channel, then
  // another's), frames of varied sizes, and in the third tick a new epoch on two channels (a
  // `gap` frame, written by ws, between runs).
  for (let tick = 0; tick < 5; tick++) {
    for (let round = 0; round < 40; round++) {
      for (const [i, c] of channels.entries()) {
        for (let k = 0; k < 1 + ((i + round) % 3); k++) publish(c, 100 + ((round * 37 + i * 101) % 3000));
        if (tick === 2 && round === 20 && i % 5 === 0) {
          epochs.set(c, `${epochs.get(c)}z`);
          next.set(c, 1);
          expected.get(c)?.push('gap');
        }
      }
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  slow.tcp.resume();
  const total = [...expected.values()].reduce((n, list) => n + list.filter((e) => e !== 'gap').length, 0);
  for (const { frames } of [slow, fast]) {
    await until(() => frames.filter((f) => f.op === 'event').length >= total);
    const got = new Map<string, string[]>();
    for (const f of frames) {
      if (f.channel === undefined || (f.op !== 'event' && f.op !== 'gap')) continue;
      got.set(f.channel, [...(got.get(f.channel) ?? []), f.op === 'gap' ? 'gap' : `${f.offset}@${f.epoch}`]);
    }
    for (const c of channels) assert.deepEqual(got.get(c), expected.get(c), c);
  }
});

test('a reader that stops reading should be closed with 4009 after an in-order prefix of each channel, while a reader that keeps up gets every frame', async (t) => {
  const g = singleNodeGateway({ limits: { maxSubscriptions: 20 } });
  const app = await singleNodeApp(t, g, { sendBufferBytes: 512 * 1024, maxSubscriptions: 20 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const channels = Array.from({ length: 8 }, (_, i) => `creator:c${i}`);
  const slow = await subscribedClient(t, app, channels);
  const fast = await subscribedClient(t, app, channels);
  const epochs = new Map<string, string>();
  for (const c of channels) epochs.set(c, (await g.history.position(c)).epoch);
  const sent = new Map<string, number>(channels.map((c) => [c, 0]));
  slow.tcp.pause();
  // 40 ticks of ~150 KB (runs of every channel), 6 MB in all: far past the slow reader's buffers.
  for (let tick = 0; tick < 40; tick++) {
    for (let round = 0; round < 6; round++) {
      for (const [i, channel] of channels.entries()) {
        for (let k = 0; k < 1 + ((i + round) % 3); k++) {
          const epoch = epochs.get(channel) as string;
          const offset = String((sent.get(channel) ?? 0) + 1);
          sent.set(channel, Number(offset));
          const pad = 'x'.repeat(500 + ((tick * 131 + round * 37 + i * 101) % 3000));
          g.hub.publish({ channel, offset, epoch, frame: eventFrame(channel, offset, epoch, JSON.stringify({ pad })) });
        }
      }
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  slow.tcp.resume();
  const total = [...sent.values()].reduce((a, b) => a + b, 0);
  await until(() => fast.frames.filter((f) => f.op === 'event').length >= total);
  await until(() => slow.frames.some((f) => f.op === 'close'));
  const offsets = (frames: typeof slow.frames, channel: string) =>
    frames.filter((f) => f.op === 'event' && f.channel === channel).map((f) => Number(f.offset));
  assert.deepEqual(slow.frames.at(-1), { op: 'close', code: 4009 });
  for (const c of channels) {
    const all = Array.from({ length: sent.get(c) ?? 0 }, (_, i) => i + 1);
    assert.deepEqual(offsets(fast.frames, c), all, `the fast reader's ${c}`);
    const prefix = offsets(slow.frames, c);
    assert.deepEqual(prefix, all.slice(0, prefix.length), `the slow reader's ${c}: a prefix, in order, once`);
  }
  assert.ok(!fast.frames.some((f) => f.op === 'close'), 'the fast reader stays connected');
});

test('a reader that resets its connection in the middle of a burst should be released while the burst goes on to the others', async (t) => {
  const g = singleNodeGateway({ limits: { maxSubscriptions: 20 } });
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024 * 1024, maxSubscriptions: 20 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const channels = Array.from({ length: 4 }, (_, i) => `creator:c${i}`);
  const gone = await subscribedClient(t, app, channels);
  const stays = await subscribedClient(t, app, channels);
  const epochs = new Map<string, string>();
  for (const c of channels) epochs.set(c, (await g.history.position(c)).epoch);
  const sent = new Map<string, number>(channels.map((c) => [c, 0]));
  gone.tcp.pause();
  for (let tick = 0; tick < 20; tick++) {
    for (let round = 0; round < 20; round++) {
      for (const channel of channels) {
        const epoch = epochs.get(channel) as string;
        const offset = String((sent.get(channel) ?? 0) + 1);
        sent.set(channel, Number(offset));
        const pad = 'x'.repeat(1000 + ((tick * 7 + round * 13) % 2000));
        g.hub.publish({ channel, offset, epoch, frame: eventFrame(channel, offset, epoch, JSON.stringify({ pad })) });
      }
    }
    // Frames wait for the paused reader's drain when it resets (RST): writes to a dead socket follow.
    if (tick === 8) gone.client.terminate();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const total = [...sent.values()].reduce((a, b) => a + b, 0);
  await until(() => stays.frames.filter((f) => f.op === 'event').length >= total);
  await until(() => g.connections.size === 1);
  assert.equal(g.connections.size, 1, 'the reset connection is released');
  assert.equal(
    g.hub.subscriptionCount,
    channels.length + 1,
    "the other socket's subscriptions (and its user channel) only",
  );
  for (const c of channels)
    assert.deepEqual(
      stays.frames.filter((f) => f.op === 'event' && f.channel === c).map((f) => Number(f.offset)),
      Array.from({ length: sent.get(c) ?? 0 }, (_, i) => i + 1),
      c,
    );
});

test('a reading client resuming with a replay several times its send buffer should get every event once, in order, then the live ones, with no 4009', async (t) => {
  const g = singleNodeGateway();
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  // 90 events of ~3 KB: a replay of ~270 KB, four times the send buffer.
  const since = await appendHistory(g, 'creator:c0', 90, 3000);
  const { client, frames } = await subscribedClient(t, app, []);
  client.send(JSON.stringify({ op: 'subscribe', id: 'r', channel: 'creator:c0', since }));
  await until(() => frames.some((f) => f.op === 'ack'));
  publishLive(g, 'creator:c0', since.epoch, 90, 20);
  await until(() => frames.filter((f) => f.op === 'event').length >= 110 || frames.some((f) => f.op === 'close'));
  const ack = frames.find((f) => f.op === 'ack') as { recovered?: boolean; replayed?: number };
  assert.deepEqual([ack.recovered, ack.replayed], [true, 90]);
  const offsets = frames.filter((f) => f.op === 'event').map((f) => Number(f.offset));
  assert.deepEqual(
    offsets,
    Array.from({ length: 110 }, (_, i) => i + 1),
  );
  assert.ok(!frames.some((f) => f.op === 'close'), 'the reader stays connected');
});

test('a client that stops reading during a replay should still be closed with 4009 once live events pile up behind it', async (t) => {
  const g = singleNodeGateway();
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const since = await appendHistory(g, 'creator:c0', 90, 3000);
  const { client, frames, tcp } = await subscribedClient(t, app, []);
  tcp.pause();
  client.send(JSON.stringify({ op: 'subscribe', id: 'r', channel: 'creator:c0', since }));
  // Joined (or, before the fix, already closed by its replay and released).
  await until(() => g.hub.channelNames().includes('creator:c0') || g.hub.subscriptionCount === 0);
  // ~600 KB of live events, which come after the replay (held back until it is out) and are not read either.
  publishLive(g, 'creator:c0', since.epoch, 90, 200);
  await until(() => g.hub.subscriptionCount === 0);
  tcp.resume();
  await until(() => frames.some((f) => f.op === 'close'));
  assert.deepEqual(frames.at(-1), { op: 'close', code: 4009 });
  const offsets = frames.filter((f) => f.op === 'event').map((f) => Number(f.offset));
  assert.deepEqual(
    offsets,
    Array.from({ length: offsets.length }, (_, i) => i + 1),
    'an in-order prefix, once',
  );
});

test('a client that asks for replay after replay without reading should be held to one replay at a time, and get every one once it reads, with no 4009', async (t) => {
  const g = singleNodeGateway();
  const budget = new SendBudget({ limitBytes: 1024 * 1024 * 1024, stallMs: 60_000 });
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024 }, budget);
  await app.listen({ host: '127.0.0.1', port: 0 });
  // 90 events of ~3 KB: a replay of ~270 KB, four times the send buffer.
  const since = await appendHistory(g, 'creator:c0', 90, 3000);
  const queuedAtRead = atEachHistoryRead(g, () => budget.queuedBytes);
  const { client, frames, tcp } = await subscribedClient(t, app, []);
  tcp.pause();
  // Eight replays of 90 events: far more than one replay (the history limit, 100 events).
  for (let i = 0; i < 8; i++) {
    client.send(JSON.stringify({ op: 'subscribe', id: `s${i}`, channel: 'creator:c0', since }));
    client.send(JSON.stringify({ op: 'unsubscribe', id: `u${i}`, channel: 'creator:c0' }));
  }
  await until(() => budget.queuedBytes > 200 * 1024 || frames.some((f) => f.op === 'close'));
  tcp.resume();
  await until(() => frames.filter((f) => f.op === 'event').length >= 8 * 90 || frames.some((f) => f.op === 'close'));
  assert.ok(!frames.some((f) => f.op === 'close'), 'the reader stays connected');
  const offsets = frames.filter((f) => f.op === 'event').map((f) => Number(f.offset));
  assert.deepEqual(
    offsets,
    Array.from({ length: 8 * 90 }, (_, i) => (i % 90) + 1),
  );
  assert.equal(queuedAtRead.length, 8);
  assert.ok(
    queuedAtRead.every((bytes) => bytes < 90 * 3000),
    `each replay read once the one before left for the socket: queued at each read ${queuedAtRead.join(', ')}`,
  );
});

test('a reading client resuming five channels at once, each a replay several times its send buffer, should get every event once, in order per channel, then the live ones, in one connection', async (t) => {
  const g = singleNodeGateway();
  const budget = new SendBudget({ limitBytes: 1024 * 1024 * 1024, stallMs: 60_000 });
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024, maxSubscriptions: 8 }, budget);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const channels = Array.from({ length: 5 }, (_, i) => `creator:c${i}`);
  // Per channel 90 events of ~3 KB: a replay of ~270 KB, four times the send buffer; 1.35 MB in all.
  const since = new Map<string, StreamPosition>();
  for (const c of channels) since.set(c, await appendHistory(g, c, 90, 3000));
  const queuedAtRead = atEachHistoryRead(g, () => budget.queuedBytes);
  const { client, frames } = await subscribedClient(t, app, []);
  for (const [i, channel] of channels.entries())
    client.send(JSON.stringify({ op: 'subscribe', id: `r${i}`, channel, since: since.get(channel) }));
  const events = () => frames.filter((f) => f.op === 'event').length;
  await until(() => events() >= 5 * 90 || frames.some((f) => f.op === 'close'));
  // Live events count against the send buffer: each channel's (~60 KB) once the ones before were read.
  for (const [i, c] of channels.entries()) {
    publishLive(g, c, since.get(c)?.epoch ?? '', 90, 20);
    await until(() => events() >= 5 * 90 + (i + 1) * 20 || frames.some((f) => f.op === 'close'));
  }
  assert.ok(!frames.some((f) => f.op === 'close'), `the reader stays connected (closed after ${events()} events)`);
  const acks = frames.filter((f) => f.op === 'ack') as { channel?: string; recovered?: boolean; replayed?: number }[];
  assert.deepEqual(
    acks.map((a) => [a.channel, a.recovered, a.replayed]),
    channels.map((c) => [c, true, 90]),
  );
  for (const c of channels)
    assert.deepEqual(
      frames.filter((f) => f.op === 'event' && f.channel === c).map((f) => Number(f.offset)),
      Array.from({ length: 110 }, (_, i) => i + 1),
      c,
    );
  assert.ok(
    queuedAtRead.every((bytes) => bytes < 90 * 3000),
    `one replay held at a time: queued at each read ${queuedAtRead.join(', ')}`,
  );
});

test('a client that stops reading while it resumes five channels should still be closed with 4009 once live events pile up, after an in-order prefix of each', async (t) => {
  const g = singleNodeGateway();
  const app = await singleNodeApp(t, g, { sendBufferBytes: 64 * 1024, maxSubscriptions: 8 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const channels = Array.from({ length: 5 }, (_, i) => `creator:c${i}`);
  const since = new Map<string, StreamPosition>();
  for (const c of channels) since.set(c, await appendHistory(g, c, 90, 3000));
  const { client, frames, tcp } = await subscribedClient(t, app, []);
  tcp.pause();
  for (const [i, channel] of channels.entries())
    client.send(JSON.stringify({ op: 'subscribe', id: `r${i}`, channel, since: since.get(channel) }));
  // The first channel joined (or already closed and released).
  await until(() => g.hub.channelNames().includes('creator:c0') || g.hub.subscriptionCount === 0);
  // ~600 KB of live events per channel, not read either.
  for (const c of channels) publishLive(g, c, since.get(c)?.epoch ?? '', 90, 200);
  await until(() => g.hub.subscriptionCount === 0);
  assert.equal(g.hub.subscriptionCount, 0, 'released');
  tcp.resume();
  await until(() => frames.some((f) => f.op === 'close'));
  assert.deepEqual(frames.at(-1), { op: 'close', code: 4009 });
  for (const c of channels) {
    const offsets = frames.filter((f) => f.op === 'event' && f.channel === c).map((f) => Number(f.offset));
    assert.deepEqual(
      offsets,
      Array.from({ length: offsets.length }, (_, i) => i + 1),
      `${c}: an in-order prefix, once`,
    );
  }
});
