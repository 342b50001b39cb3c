// One share of a chaos fleet, in a process of its own (see fleet.ts): it sets up its clients,
// keeps them connected, and sends the driver, in batches over IPC, every ledger entry (events,
// gaps, refetches, recoveries, closes) and every connection step of its clients. Thousands of
// clients in the driver's one event loop made its stalls (seconds) part of every recovery measured.
import type { ClientRequest } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { createClient } from '@ripple/client';
import type { RippleClient, WebSocketConstructor } from '@ripple/client';
import { waitUntil } from '@ripple/testing';
import type { FleetNote, FleetReply, FleetRequest, FleetStart } from './fleet.js';

/** How long a note waits for others to share its IPC message, ms. */
const NOTE_BATCH_MS = 20;

let notes: FleetNote[] = [];
/** Receipts of this batch: event id → the clients that got it (the `receive` notes). */
let received = new Map<string, number[]>();
let flushing: ReturnType<typeof setTimeout> | undefined;
const send = (message: FleetReply): void => void process.send?.(message);
const flush = (): void => {
  clearTimeout(flushing);
  flushing = undefined;
  for (const [id, i] of received) notes.push({ k: 'receive', id, i });
  received = new Map();
  if (notes.length === 0) return;
  const batch = notes;
  notes = [];
  send({ op: 'notes', notes: batch });
};
const note = (n: FleetNote): void => {
  notes.push(n);
  flushing ??= setTimeout(flush, NOTE_BATCH_MS);
};
/** Client `index` received event `id`. */
const receive = (index: number, id: string): void => {
  const clients = received.get(id);
  if (clients) clients.push(index);
  else received.set(id, [index]);
  flushing ??= setTimeout(flush, NOTE_BATCH_MS);
};

const clients: RippleClient[] = [];
const sockets: (WebSocket | undefined)[] = []; // by position in this process's share
let closing = false; // closes from `close` are not faults
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();

/** Page of GET /users/:id/posts (post-service). */
interface PostPage {
  readonly items: readonly { readonly id: string }[];
  readonly nextCursor: string | null;
}

/**
 * Every post id of `creator`, read page by page from post-service's REST API at `baseUrl` (the
 * refetch a client makes after a gap). Throws on a non-2xx answer.
 */
async function fetchPostIds(baseUrl: string, creator: string, token: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 10_000; page++) {
    const query: string = `limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const res = await fetch(`${baseUrl}/users/${creator}/posts?${query}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (!res.ok) throw new Error(`GET /users/${creator}/posts answered ${res.status}`);
    const body = (await res.json()) as PostPage;
    ids.push(...body.items.map((p) => p.id));
    if (!body.nextCursor) return ids;
    cursor = body.nextCursor;
  }
  throw new Error(`GET /users/${creator}/posts did not end within 10,000 pages`);
}

/**
 * Sets up client `index` of the fleet (position `slot` in this share), which follows
 * `creator:<creator>`; resolves once its subscription is acknowledged.
 */
function connectOne(start: FleetStart, slot: number, index: number, token: string): Promise<void> {
  const creator = start.creators[index % start.creators.length] ?? '';
  const channel = `creator:${creator}`;
  const mark = (m: Extract<FleetNote, { k: 'mark' }>['mark'], detail?: number) =>
    note({ k: 'mark', i: index, mark: m, at: Date.now(), ...(detail !== undefined && { detail }) });
  /** Watches a new socket of this client: its steps, its `welcome`, and how it closes. */
  const track = (socket: WebSocket): WebSocket => {
    sockets[slot] = socket;
    mark('attempt');
    const request = (socket as unknown as { _req?: ClientRequest })._req;
    request?.once('socket', (tcp) => {
      tcp.once('connect', () => {
        if (tcp.localPort !== undefined) note({ k: 'port', i: index, port: tcp.localPort });
      });
    });
    let settled = false; // welcome and ack seen: later frames are only looked at for `reconnect`
    let told = false; // the gateway asked this client to reconnect elsewhere (it drains)
    let byClient = false; // the SDK closed this socket (after `reconnect`, or its heartbeat check)
    const close = socket.close.bind(socket);
    socket.close = (...args) => {
      byClient = true;
      close(...args);
    };
    socket.on('open', () => mark('open'));
    socket.on('message', (data: Buffer) => {
      // Event frames are longer; reading each one as text would cost every delivery a copy.
      if (settled && data.length > 200) return;
      const text = data.toString();
      if (text.includes('"op":"reconnect"')) told = true;
      if (settled) return;
      if (text.includes('"op":"welcome"')) {
        // The node the client is on, to say where a missing delivery should have come from.
        const node = (JSON.parse(text) as { node?: unknown }).node;
        if (typeof node === 'string') note({ k: 'node', i: index, node });
        mark('welcome');
      } else if (text.includes('"op":"ack"')) {
        mark('ack');
        settled = true;
      }
    });
    socket.on('close', (code) => {
      if (closing) return;
      const by = byClient ? (told ? 'client after reconnect' : 'client, no reconnect asked') : 'gateway side';
      note({ k: 'closed', code, by });
      mark('close', code);
    });
    return socket;
  };
  // What the SDK calls with `new`: a function that returns a tracked `ws` socket, so every
  // socket is of ws's own class (a subclass per client made ws's code see thousands of shapes).
  const Tracked = function (url: string) {
    return track(new WebSocket(url));
  } as unknown as WebSocketConstructor;
  const client = createClient({
    url: `ws://127.0.0.1:${start.proxyPort}/ws`,
    getToken: () => Promise.resolve(token),
    WebSocket: Tracked,
    transports: ['websocket'],
    backoff: { initialMs: 200, maxMs: 1000 },
  });
  let lostAt: number | undefined;
  client.on('state', (state) => {
    if (state === 'disconnected' && lostAt === undefined) {
      lostAt = Date.now();
      note({ k: 'mark', i: index, mark: 'lost', at: lostAt });
    }
    if (state === 'connected' && lostAt !== undefined) {
      note({ k: 'recovered', ms: Date.now() - lostAt });
      lostAt = undefined;
    }
  });
  const refetch = (): Promise<void> =>
    waitUntil(`the refetch of ${channel}`, 60_000, async () => {
      try {
        note({ k: 'refetch', i: index, ids: await fetchPostIds(start.postServiceUrl, creator, token) });
        return true;
      } catch {
        return false;
      }
    });
  const subscription = client.subscribe(channel, {
    onEvent: (event) => {
      if (event.type === 'post.created') receive(index, event.data.postId);
    },
    onGap: () => {
      note({ k: 'gap', i: index });
      // A refetch that never succeeds leaves its ids missing: the ledger reports it.
      refetch().catch(() => undefined);
    },
  });
  clients.push(client);
  return subscription.ready;
}

/**
 * Sets up the share's clients, `start.connecting` at a time, each replaced as soon as it is
 * subscribed; tells the driver of each subscription (a note) and, at the end, `connected`.
 */
async function connectShare(start: FleetStart): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < start.clients.length) {
      const slot = next++;
      const client = start.clients[slot];
      if (!client) return;
      await connectOne(start, slot, client.index, client.token);
      note({ k: 'subscribed' });
    }
  };
  await Promise.all(Array.from({ length: Math.min(start.connecting, start.clients.length) }, worker));
  flush();
  send({ op: 'connected' });
}

process.on('message', (message: FleetRequest) => {
  switch (message.op) {
    case 'start':
      connectShare(message).catch((err: unknown) => {
        flush();
        send({ op: 'failed', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      });
      return;
    case 'pause': {
      const paused = sockets.slice(0, message.count).filter((s): s is WebSocket => s !== undefined);
      for (const socket of paused) socket.pause();
      setTimeout(() => {
        for (const socket of paused) socket.resume();
        send({ op: 'done', id: message.id });
      }, message.ms);
      return;
    }
    case 'loop':
      send({ op: 'done', id: message.id, loop: { p99Ms: loop.percentile(99) / 1e6, maxMs: loop.max / 1e6 } });
      return;
    case 'close':
      closing = true;
      for (const client of clients) client.close();
      flush();
      process.disconnect();
      return;
  }
});
// The driver is gone (crashed, killed, or done with this share): so is this process.
process.on('disconnect', () => process.exit(0));
send({ op: 'ready' });
