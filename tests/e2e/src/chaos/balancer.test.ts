import { createConnection, createServer } from 'node:net';
import type { AddressInfo, Server } from 'node:net';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitUntil } from '@ripple/testing';
import { startLoadBalancer } from './balancer.js';

/** A TCP server that counts the connections it got. */
async function countingServer(t: { after(fn: () => Promise<void>): void }) {
  const server: Server & { got?: number } = createServer((socket) => {
    server.got = (server.got ?? 0) + 1;
    socket.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, got: () => server.got ?? 0 };
}

const connectThrough = (port: number) =>
  new Promise<void>((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.on('close', () => resolve());
    socket.on('error', () => resolve());
  });

test('the chaos load balancer should spread new connections and send none to a node taken out', async (t) => {
  const [a, b] = [await countingServer(t), await countingServer(t)];
  const balancer = await startLoadBalancer();
  t.after(() => balancer.close());
  const seen: string[] = [];
  balancer.trace = (_port, step) => seen.push(step);

  await balancer.setTargets([a.port, b.port]);
  for (let i = 0; i < 4; i++) await connectThrough(balancer.port);
  await waitUntil('4 connections served', 10_000, () => a.got() + b.got() === 4);
  assert.deepEqual([a.got(), b.got()], [2, 2], 'round robin over both');

  await balancer.setTargets([b.port]); // a is taken out (about to be stopped)
  for (let i = 0; i < 4; i++) await connectThrough(balancer.port);
  await waitUntil('8 connections served', 10_000, () => a.got() + b.got() === 8);
  assert.deepEqual([a.got(), b.got()], [2, 6], 'nothing more to the node taken out');
  await waitUntil('every step traced', 10_000, () => seen.filter((s) => s === 'forwarded').length === 8);
});
