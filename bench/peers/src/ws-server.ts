#!/usr/bin/env node
// The ceiling: a minimal `ws` server that does only what the workload needs. Clients connect to
// /ws?access_token=… (verified like Ripple's gateway does), get `{"op":"welcome"}`, subscribe with
// `{"op":"subscribe","id","channel"}` (acknowledged); the publisher connects to /pub and sends
// `{"channel","data"}` frames, each forwarded as is to the channel's subscribers.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { jwtSecret, verifyAccessToken } from '@ripple/auth';
import { serve } from './rpc.js';

const secret = jwtSecret(process.env.JWT_SECRET ?? '');
const channels = new Map<string, Set<WebSocket>>();
const wss = new WebSocketServer({ noServer: true });
const http = createServer();

function onClient(socket: WebSocket): void {
  const mine = new Set<string>();
  socket.send('{"op":"welcome"}');
  socket.on('message', (data: Buffer) => {
    const frame = JSON.parse(data.toString('utf8')) as { op?: string; id?: string; channel?: string };
    if (frame.op !== 'subscribe' || typeof frame.channel !== 'string') return;
    let members = channels.get(frame.channel);
    if (members === undefined) channels.set(frame.channel, (members = new Set()));
    members.add(socket);
    mine.add(frame.channel);
    socket.send(JSON.stringify({ op: 'ack', id: frame.id, channel: frame.channel }));
  });
  socket.on('close', () => {
    for (const c of mine) channels.get(c)?.delete(socket);
  });
}

function onPublisher(socket: WebSocket): void {
  socket.on('message', (data: Buffer) => {
    const text = data.toString('utf8');
    const { channel } = JSON.parse(text) as { channel: string };
    for (const member of channels.get(channel) ?? []) member.send(text);
  });
}

http.on('upgrade', (req, sock, head) => {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/pub') {
    wss.handleUpgrade(req, sock, head, onPublisher);
    return;
  }
  verifyAccessToken(secret, url.searchParams.get('access_token') ?? '').then(
    () => wss.handleUpgrade(req, sock, head, onClient),
    () => sock.destroy(),
  );
});

serve({
  listen: () =>
    new Promise<number>((resolve) => http.listen(0, '127.0.0.1', () => resolve((http.address() as AddressInfo).port))),
});
