import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { CheckedWebSocket, checkedFetch, readSseEvents } from './frame-contract.js';
import { TestClient, openSse } from './harness.js';

// The receivers the end-to-end suites use hold every frame to docs/asyncapi-gateway.yaml: a
// server that sends a frame type the document does not have (or a documented one in another
// shape) fails the test that receives it. Here a fake gateway sends such frames.

const welcome = { op: 'welcome', connectionId: 'c1', node: 'n1', user: 'u1', heartbeatMs: 1000 };
const frames = [JSON.stringify(welcome), JSON.stringify({ op: 'surprise', channel: 'creator:u1' })];
const openapi = {
  openapi: '3.0.3',
  info: { title: 'fake gateway', version: '1' },
  paths: {
    '/sse': {
      get: {
        responses: {
          '200': { description: 'a stream', content: { 'text/event-stream': { schema: { type: 'string' } } } },
        },
      },
    },
  },
};
let server: Server;
let wss: WebSocketServer;
let port: number;

before(async () => {
  server = createServer((request, response) => {
    if (request.url === '/docs/json') {
      response.setHeader('content-type', 'application/json').end(JSON.stringify(openapi));
      return;
    }
    response.writeHead(200, { 'content-type': 'text/event-stream' });
    response.end(
      `event: welcome\ndata: ${frames[0]}\n\n: keep-alive\n\nevent: ack\ndata: {"op":"ack","extra":true}\n\n`,
    );
  });
  wss = new WebSocketServer({ server });
  wss.on('connection', (socket) => {
    for (const frame of frames) socket.send(frame);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

after(async () => {
  for (const client of wss.clients) client.terminate();
  wss.close();
  await new Promise((resolve) => server.close(resolve));
});

test('a WebSocket test client should fail on a frame type the gateway AsyncAPI document does not have', async () => {
  const client = TestClient.connect(`ws://127.0.0.1:${port}/ws`);
  await assert.rejects(
    client.frame((f) => f.op === 'never'),
    { name: 'AssertionError', message: /\/ws: no message surprise in the contract/ },
  );
  assert.equal(client.frames[0]?.op, 'welcome', 'a documented frame passes');
  assert.throws(() => client.close(), /no message surprise/);
});

test('an SSE stream should fail on an event that breaks its schema in the gateway AsyncAPI document', async () => {
  const sse = await openSse(`http://127.0.0.1:${port}/sse?channels=creator:u1`);
  assert.equal(sse.status, 200);
  const deadline = Date.now() + 10_000;
  while (sse.violations.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.match(String(sse.violations[0]?.message), /\/sse ack breaks the contract/);
  assert.throws(() => sse.abort(), /\/sse ack breaks the contract/);
});

test('the checked WebSocket and fetch given to @ripple/client should record frames the document refuses', async () => {
  const { assertFramesConform } = await import('./frame-contract.js');
  const socket = new CheckedWebSocket(`ws://127.0.0.1:${port}/ws`);
  const received: string[] = [];
  socket.on('message', (data: Buffer) => received.push(data.toString('utf8')));
  const deadline = Date.now() + 10_000;
  while (received.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  socket.close();
  await assert.rejects(assertFramesConform(), /no message surprise/);

  const response = await checkedFetch(`http://127.0.0.1:${port}/sse`);
  const events: string[] = [];
  assert.ok(response.body);
  await readSseEvents(response.body, (e) => events.push(e.event ?? ''));
  assert.deepEqual(events, ['welcome', 'ack'], 'the caller still reads the whole stream');
});
