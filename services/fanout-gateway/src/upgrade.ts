import type { EventEmitter } from 'node:events';
import type { IncomingMessage, Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { parse as parseQuery } from 'node:querystring';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { HttpErrors, writeErrorAnswer } from '@ripple/http';
import type { WebSocket, WebSocketServer } from 'ws';
import { WebSocketHeaders, WebSocketQuery } from './http-contract.js';

const validQuery = TypeCompiler.Compile(WebSocketQuery);
const validHeaders = TypeCompiler.Compile(WebSocketHeaders);

/** What `GET /ws` accepts, besides a valid query and headers (the route's own checks). */
export interface UpgradeChecks {
  readonly isDraining: () => boolean;
  readonly originAllowed: (origin: string | undefined) => boolean;
}

/** The path of a request URL (without its query). */
function pathOf(url: string): string {
  const mark = url.indexOf('?');
  return mark < 0 ? url : url.slice(0, mark);
}

/**
 * The query of an upgrade request that `GET /ws` would accept as it is, or undefined when it might
 * not: another method or path, the node draining, a refused origin, a query or headers the route's
 * schemas refuse. Strict: what passes here passes the route's (coercing) validation too.
 */
export function acceptableUpgrade(
  request: IncomingMessage,
  checks: UpgradeChecks,
): Record<string, unknown> | undefined {
  if (request.method !== 'GET') return undefined;
  const url = request.url ?? '';
  const mark = url.indexOf('?');
  if (pathOf(url) !== '/ws') return undefined;
  if (checks.isDraining() || !checks.originAllowed(request.headers.origin)) return undefined;
  const query: Record<string, unknown> = mark < 0 ? {} : { ...parseQuery(url.slice(mark + 1)) };
  return validQuery.Check(query) && validHeaders.Check(request.headers) ? query : undefined;
}

const kAcceptedAt = Symbol('ripple.acceptedAt');

function markAccepted(socket: Duplex): void {
  (socket as Duplex & { [kAcceptedAt]?: number })[kAcceptedAt] = performance.now();
}

/**
 * When `server`'s event loop accepted the TCP connection of `socket` (ms, `performance.now()`),
 * for connections of a server given to {@link upgradeFastPath}; undefined for others.
 */
export function acceptedAt(socket: Duplex): number | undefined {
  return (socket as Duplex & { [kAcceptedAt]?: number })[kAcceptedAt];
}

/**
 * Upgrades of `server` that `GET /ws` would accept go straight to `wss` (`ws`, noServer) and then
 * to `connect` with the parsed query; every other upgrade is re-emitted on `routed`, which
 * @fastify/websocket listens to (its `server` option), so fastify routes it through the route's
 * hooks and schemas and answers a refusal with the shared error body. An accepted upgrade makes no
 * fastify request, reply or ServerResponse: per connect, that routing was the largest part of the
 * gateway's CPU after the registry work, and its objects stayed reachable from the socket.
 * `connect` gets the TCP socket corked, its `101` answer unsent: whoever sends the first frame
 * must uncork it (ws.ts); and when the connection was accepted (ms, `performance.now()`), the
 * start of its set-up time (`gateway_connection_setup_seconds`).
 */
export function upgradeFastPath(
  server: Server,
  routed: EventEmitter,
  wss: Pick<WebSocketServer, 'handleUpgrade'>,
  checks: UpgradeChecks,
  connect: (socket: WebSocket, query: Record<string, unknown>, request: IncomingMessage, acceptedAt: number) => void,
): void {
  server.on('connection', markAccepted);
  server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = pathOf(request.url ?? '');
    if (path !== '/ws') {
      // Only /ws speaks WebSocket: elsewhere @fastify/websocket would answer 101 and hang up.
      writeErrorAnswer(socket, HttpErrors.notFound.status, {
        code: HttpErrors.notFound.code,
        message: `no WebSocket endpoint at ${path}: use /ws`,
      });
      socket.end();
      return;
    }
    const query = acceptableUpgrade(request, checks);
    if (query === undefined) routed.emit('upgrade', request, socket, head);
    else {
      // The `101` waits in the cork for the connection's first frame (`welcome`): one write, not two.
      socket.cork();
      const at = acceptedAt(socket) ?? performance.now();
      wss.handleUpgrade(request, socket, head, (ws) => connect(ws, query, request, at));
    }
  });
}
