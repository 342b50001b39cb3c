#!/usr/bin/env node
// The Socket.IO peer: socket.io with @socket.io/redis-adapter (the documented way to run more than
// one node, fed by @socket.io/redis-emitter from a separate publisher process). websocket
// transport only; a middleware verifies the same access token Ripple's gateway does; a client joins
// a room with the `join` event (acknowledged).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';
import { jwtSecret, verifyAccessToken } from '@ripple/auth';
import { serve } from './rpc.js';

const secret = jwtSecret(process.env.JWT_SECRET ?? '');
const pub = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
const sub = pub.duplicate();
const http = createServer();
const io = new Server(http, {
  transports: ['websocket'],
  adapter: createAdapter(pub, sub, { key: process.env.SIO_KEY ?? 'socket.io' }),
});
io.use((socket, next) => {
  const token = (socket.handshake.auth as { token?: unknown }).token;
  verifyAccessToken(secret, typeof token === 'string' ? token : '').then(
    () => next(),
    () => next(new Error('unauthorized')),
  );
});
io.on('connection', (socket) => {
  socket.on('join', (room: unknown, ack: unknown) => {
    if (typeof room !== 'string') return;
    void socket.join(room);
    if (typeof ack === 'function') (ack as (ok: boolean) => void)(true);
  });
});

serve({
  listen: () =>
    new Promise<number>((resolve) => http.listen(0, '127.0.0.1', () => resolve((http.address() as AddressInfo).port))),
});
