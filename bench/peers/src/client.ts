#!/usr/bin/env node
// One client process of the benchmark: holds up to ~19,900 bare `ws` sockets (the open-files
// limit) to one peer, speaking that peer's dialect, and counts the events each receives with the
// latency from the scheduled send time stamped in the payload. Driven by the orchestrator (rpc.ts).
import { WebSocket } from 'ws';
import { dialects, stampOf } from './dialects.js';
import type { PeerName } from './dialects.js';
import { serve } from './rpc.js';

const HIST_MS = 120_000;
const CONNECT_CONCURRENCY = 200;
const STEP_DEADLINE_MS = 120_000;

let sockets: WebSocket[] = [];
let firstIndex = 0;
let received = 0;
let lastAt = 0;
let max = 0;
let hist = new Uint32Array(HIST_MS + 1);

function onEvent(frame: string): void {
  const stamp = stampOf(frame);
  if (stamp === undefined) return;
  const now = Date.now();
  received += 1;
  lastAt = now;
  const ms = Math.max(0, now - stamp);
  if (ms > max) max = ms;
  hist[Math.min(ms, HIST_MS)] = (hist[Math.min(ms, HIST_MS)] ?? 0) + 1;
}

/** Resolves once `check` returns true on a frame of `socket`, rejects on a refusal or a deadline. */
function expectFrames(
  socket: WebSocket,
  peer: PeerName,
  count: number,
  check: (frame: string) => boolean,
  what: string,
): Promise<void> {
  const d = dialects[peer];
  return new Promise((resolve, reject) => {
    let seen = 0;
    const timer = setTimeout(() => reject(new Error(`no ${what} within ${STEP_DEADLINE_MS} ms`)), STEP_DEADLINE_MS);
    const onFrame = (data: Buffer): void => {
      const frame = data.toString('utf8');
      if (d.isRefusal(frame)) {
        clearTimeout(timer);
        socket.off('message', onFrame);
        reject(new Error(`refused: ${frame.slice(0, 200)}`));
      } else if (check(frame) && ++seen === count) {
        clearTimeout(timer);
        socket.off('message', onFrame);
        resolve();
      }
    };
    socket.on('message', onFrame);
  });
}

function openOne(peer: PeerName, port: number, token: string): Promise<WebSocket> {
  const d = dialects[peer];
  const socket = new WebSocket(d.url(port, token));
  socket.on('message', (data: Buffer) => {
    const frame = data.toString('utf8');
    const answer = d.reply(frame);
    if (answer !== undefined) socket.send(answer);
    else onEvent(frame);
  });
  const authenticated = expectFrames(socket, peer, 1, (f) => d.isAuthenticated(f), 'authentication');
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.once('open', () => {
      const hello = d.hello(token);
      if (hello !== undefined) socket.send(hello);
    });
    authenticated.then(() => resolve(socket), reject);
  });
}

serve({
  /**
   * Opens `count` authenticated sockets; socket k has the global index `first + k` and connects
   * with `token`, or with `token[k]` when it is a list (one user per socket).
   */
  async open(args: { peer: PeerName; port: number; token: string | readonly string[]; count: number; first: number }) {
    firstIndex = args.first;
    const tokenOf = (k: number): string => (typeof args.token === 'string' ? args.token : (args.token[k] ?? ''));
    for (let i = 0; i < args.count; i += CONNECT_CONCURRENCY) {
      const n = Math.min(CONNECT_CONCURRENCY, args.count - i);
      sockets.push(
        ...(await Promise.all(Array.from({ length: n }, (_, k) => openOne(args.peer, args.port, tokenOf(i + k))))),
      );
    }
    return sockets.length;
  },
  /** Socket g subscribes to channels c((g*perClient + k) mod channelCount), k < perClient. */
  async subscribe(args: { peer: PeerName; perClient: number; channelCount: number }) {
    const d = dialects[args.peer];
    for (let i = 0; i < sockets.length; i += CONNECT_CONCURRENCY) {
      await Promise.all(
        sockets.slice(i, i + CONNECT_CONCURRENCY).map((socket, k) => {
          const g = firstIndex + i + k;
          const acked = expectFrames(socket, args.peer, args.perClient, (f) => d.isSubscribed(f), 'subscription ack');
          for (let c = 0; c < args.perClient; c++) {
            socket.send(d.subscribe(`c${(g * args.perClient + c) % args.channelCount}`, c + 1));
          }
          return acked;
        }),
      );
    }
    return sockets.length;
  },
  reset() {
    received = 0;
    lastAt = 0;
    max = 0;
    hist = new Uint32Array(HIST_MS + 1);
    return true;
  },
  /** Counts so far; with `histogram`, the latency histogram as [ms, count] pairs. */
  stats(args: { histogram?: boolean }) {
    const pairs: [number, number][] = [];
    if (args.histogram === true) hist.forEach((n, ms) => n > 0 && pairs.push([ms, n]));
    return { received, lastAt, max, histogram: pairs };
  },
  close() {
    for (const s of sockets) s.terminate();
    const n = sockets.length;
    sockets = [];
    return n;
  },
});
