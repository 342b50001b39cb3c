import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Writable } from 'node:stream';
import * as ws from 'ws';
import { FrameRuns, sharedTextFrame, textFrame } from './ws-frame.js';

/** `ws`'s own frame parser (exported by the package, not declared by @types/ws), as a client uses it. */
const { Receiver } = ws as unknown as {
  Receiver: new (options: { isServer: boolean; maxPayload: number }) => Writable;
};

/** The messages `ws`'s client-side parser reads from `bytes`, as text; rejects on a protocol error. */
function decode(bytes: Buffer): Promise<string[]> {
  const receiver = new Receiver({ isServer: false, maxPayload: 0 });
  const messages: string[] = [];
  receiver.on('message', (data: Buffer, isBinary: boolean) => {
    assert.equal(isBinary, false, 'a text frame');
    messages.push(data.toString('utf8'));
  });
  return new Promise((resolve, reject) => {
    receiver.on('error', reject);
    // Written in small pieces, as TCP may hand them over.
    for (let at = 0; at < bytes.length; at += 1000) receiver.write(bytes.subarray(at, at + 1000));
    receiver.end(() => resolve(messages));
  });
}

test("ws's parser should read a text frame of any payload length, header boundaries included", async () => {
  const lengths = [0, 1, 125, 126, 127, 65_535, 65_536, 200_000];
  const payloads = lengths.map((n, i) => String.fromCharCode(97 + i).repeat(n));
  const frames = payloads.map((p) => textFrame(p));
  assert.deepEqual(
    frames.map((f, i) => f.length - (lengths[i] ?? 0)),
    [2, 2, 2, 4, 4, 4, 10, 10],
    'header sizes',
  );
  assert.deepEqual(await decode(Buffer.concat(frames)), payloads);
});

test('a text frame should carry multi-byte UTF-8 whole, from the text or from its bytes', async () => {
  // 126 characters but 252+ bytes: the length in the header is the byte length.
  const text = JSON.stringify({ body: 'é'.repeat(126), more: '🎉'.repeat(20_000) });
  const fromText = textFrame(text);
  const fromBytes = textFrame(Buffer.from(text, 'utf8'));
  assert.deepEqual(fromBytes, fromText);
  assert.deepEqual(await decode(fromText), [text]);
});

test('a shared event frame should be framed once for all of its sockets, from the bytes it carries', async () => {
  const position = { channel: 'c', offset: '1', epoch: 'e', frame: '{"op":"event","n":"é"}' };
  const frame = sharedTextFrame(position);
  assert.equal(sharedTextFrame(position), frame, 'the same buffer for the next socket');
  assert.deepEqual(await decode(frame), [position.frame]);
  // A feed frame's bytes are what goes out (feed.ts made them once for the event).
  const bytes = Buffer.from('{"op":"event","x":1}');
  assert.deepEqual(await decode(sharedTextFrame({ ...position, frame: 'not what is sent', bytes })), [
    bytes.toString(),
  ]);
});

test("a tick's frame runs should index each frame once and join a run's bytes once for every socket with that run", () => {
  const runs = new FrameRuns();
  const [a, b, c] = ['{"n":1}', '{"n":2}', '{"n":33}'].map((text) => textFrame(text)) as [Buffer, Buffer, Buffer];
  assert.deepEqual(
    [a, b, a, c, b].map((f) => runs.indexOf(f)),
    [0, 1, 0, 2, 1],
  );
  assert.equal(runs.bytes(0, 3), a.length + b.length + c.length);
  assert.equal(runs.bytes(1, 2), b.length + c.length);
  assert.equal(runs.joined(1, 1), b, 'a run of one is the frame itself');
  const joined = runs.joined(0, 3);
  assert.deepEqual(joined, Buffer.concat([a, b, c]));
  assert.equal(runs.joined(0, 3), joined, 'made once');
  assert.deepEqual(runs.joined(0, 2), Buffer.concat([a, b]), 'another run from the same start');
  runs.clear();
  assert.equal(runs.indexOf(c), 0);
  assert.equal(runs.bytes(0, 1), c.length);
});
