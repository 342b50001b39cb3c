import type { ClientRequest } from 'node:http';
import { loadavg } from 'node:os';
import { WebSocket } from 'ws';
import { createClient } from '@ripple/client';
import type { RippleClient, WebSocketConstructor } from '@ripple/client';
import { waitUntil } from '@ripple/testing';
import type { Cluster } from './cluster.js';
import { cpuUse } from './cpu.js';
import type { Ledger } from './ledger.js';
import type { Timelines } from './timeline.js';

/** Clients of a scenario, each following one creator channel, every event noted in the ledger. */
export interface Fleet {
  readonly clients: readonly RippleClient[];
  /** Sockets closed so far (not by `close()`), by `<close code> <which side closed>`. */
  closes(): Record<string, number>;
  /** Stops reading (pauses) the current sockets of `count` clients for `ms`: slow consumers. */
  pauseReading(count: number, ms: number): Promise<void>;
  close(): void;
}

/** Page of GET /users/:id/posts (post-service). */
interface PostPage {
  readonly items: readonly { readonly id: string }[];
  readonly nextCursor: string | null;
}

/**
 * Every post id of `creator`, read page by page from post-service's REST API (the refetch a
 * client makes after a gap). Throws on a non-2xx answer.
 */
export async function fetchPostIds(cluster: Cluster, creator: string, token: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let page = 0; page < 10_000; page++) {
    const query: string = `limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const res = await fetch(`${cluster.postService.url}/users/${creator}/posts?${query}`, {
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

/** Clients of a fleet being set up (connect, welcome, subscribe, ack) at the same time. */
const CONNECTING = 100;

/**
 * Connects `count` @ripple/client clients through the cluster's proxy (client `i` follows
 * `creator:<creators[i % creators.length]>`), at most {@link CONNECTING} at a time, and resolves once every subscription
 * is acknowledged. Each event, gap (followed at once by the REST refetch, retried until it
 * answers) and reconnection time goes to `ledger`; each connection step to `timelines`.
 */
export async function connectFleet(
  cluster: Cluster,
  ledger: Ledger,
  tag: string,
  creators: readonly string[],
  count: number,
  timelines?: Timelines,
  log?: (text: string) => void,
): Promise<Fleet> {
  const clients: RippleClient[] = [];
  const closes = new Map<string, number>(); // `<code> <who closed>` -> sockets
  let closing = false; // closes from `close()` are not faults
  const sockets: (WebSocket | undefined)[] = [];
  // The proxy's view of each connection, by the client's local port (timelines only).
  const byPort = new Map<number, string>();
  const early = new Map<number, ['accepted' | 'forwarded', number][]>(); // steps before the port was known
  if (timelines)
    cluster.proxy.trace = (port, step, at) => {
      const id = byPort.get(port);
      if (id !== undefined) timelines.mark(id, step, undefined, at);
      else early.set(port, [...(early.get(port) ?? []), [step, at]]);
    };
  /** Sets client `i` up; resolves once its subscription is acknowledged. */
  const connectOne = (i: number): Promise<void> => {
    const id = `${tag}-c${i}`;
    const creator = creators[i % creators.length] ?? '';
    const channel = `creator:${creator}`;
    ledger.follow(id, channel);
    /** Watches a new socket of this client: its steps, its `welcome`, and how it closes. */
    const track = (socket: WebSocket): WebSocket => {
      sockets[i] = socket;
      timelines?.mark(id, 'attempt');
      if (timelines) {
        const request = (socket as unknown as { _req?: ClientRequest })._req;
        request?.once('socket', (tcp) => {
          tcp.once('connect', () => {
            const port = tcp.localPort;
            if (port === undefined) return;
            byPort.set(port, id);
            for (const [step, at] of early.get(port) ?? []) timelines.mark(id, step, undefined, at);
            early.delete(port);
          });
        });
      }
      let settled = false; // welcome and ack seen: later frames are only looked at for `reconnect`
      let told = false; // the gateway asked this client to reconnect elsewhere (it drains)
      let byClient = false; // the SDK closed this socket (after `reconnect`, or its heartbeat check)
      const close = socket.close.bind(socket);
      socket.close = (...args) => {
        byClient = true;
        close(...args);
      };
      socket.on('open', () => timelines?.mark(id, 'open'));
      socket.on('message', (data: Buffer) => {
        // Event frames are longer; reading each one as text would cost every delivery a copy.
        if (settled && data.length > 200) return;
        const text = data.toString();
        if (text.includes('"op":"reconnect"')) told = true;
        if (settled) return;
        if (text.includes('"op":"welcome"')) {
          // The node the client is on, to say where a missing delivery should have come from.
          const node = (JSON.parse(text) as { node?: unknown }).node;
          if (typeof node === 'string') ledger.node(id, node);
          timelines?.mark(id, 'welcome');
        } else if (text.includes('"op":"ack"')) {
          timelines?.mark(id, 'ack');
          settled = true;
        }
      });
      socket.on('close', (code) => {
        if (closing) return;
        ledger.closed(code);
        const by = byClient ? (told ? 'client after reconnect' : 'client, no reconnect asked') : 'gateway side';
        closes.set(`${code} ${by}`, (closes.get(`${code} ${by}`) ?? 0) + 1);
        timelines?.mark(id, 'close', code);
      });
      return socket;
    };
    // What the SDK calls with `new`: a function that returns a tracked `ws` socket, so every
    // socket is of ws's own class (a subclass per client made ws's code see thousands of shapes).
    const Tracked = function (url: string) {
      return track(new WebSocket(url));
    } as unknown as WebSocketConstructor;
    const client = createClient({
      url: `ws://127.0.0.1:${cluster.proxy.port}/ws`,
      getToken: () => cluster.token(`r${id}`),
      WebSocket: Tracked,
      transports: ['websocket'],
      backoff: { initialMs: 200, maxMs: 1000 },
    });
    let lostAt: number | undefined;
    client.on('state', (state) => {
      if (state === 'disconnected' && lostAt === undefined) {
        lostAt = Date.now();
        timelines?.mark(id, 'lost');
      }
      if (state === 'connected' && lostAt !== undefined) {
        ledger.recovered(Date.now() - lostAt);
        lostAt = undefined;
      }
    });
    const refetch = async (): Promise<void> => {
      const token = await cluster.token(`r${id}`);
      await waitUntil(`the refetch of ${channel}`, 60_000, async () => {
        try {
          ledger.refetch(id, await fetchPostIds(cluster, creator, token));
          return true;
        } catch {
          return false;
        }
      });
    };
    const subscription = client.subscribe(channel, {
      onEvent: (event) => {
        if (event.type === 'post.created') ledger.receive(id, event.data.postId);
      },
      onGap: () => {
        ledger.gap(id);
        // A refetch that never succeeds leaves its ids missing: the ledger reports it.
        refetch().catch(() => undefined);
      },
    });
    clients.push(client);
    return subscription.ready;
  };
  // A window of CONNECTING clients being set up, each replaced as soon as it is subscribed (in
  // batches, each batch waited for its slowest client, and the set-up rate fell with it).
  let next = 0;
  let subscribed = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      await connectOne(next++);
      subscribed++;
    }
  };
  const started = Date.now();
  const cpu = cpuUse(() => cluster.pids());
  let last = { at: started, subscribed: 0 };
  const progress = setInterval(() => {
    const now = Date.now();
    const rate = ((subscribed - last.subscribed) * 1000) / (now - last.at);
    last = { at: now, subscribed };
    log?.(
      `fleet ${tag}: ${subscribed}/${count} subscribed after ${now - started} ms (${rate.toFixed(1)}/s in the last interval; load average ${loadavg()[0]?.toFixed(1)}); closes so far ${JSON.stringify(Object.fromEntries(closes))}\n`,
    );
  }, 5000);
  try {
    await Promise.all(Array.from({ length: Math.min(CONNECTING, count) }, worker));
  } finally {
    clearInterval(progress);
  }
  const { ms, wallMs } = cpu.done();
  const perClient = Object.entries(ms).map(([name, used]) => `${name} ${(used / count).toFixed(2)}`);
  log?.(
    `fleet ${tag}: ${count} clients subscribed in ${wallMs} ms (${((count * 1000) / wallMs).toFixed(1)}/s, load average ${loadavg()[0]?.toFixed(1)}); CPU ms per client set-up: ${perClient.join(', ')}\n`,
  );
  return {
    clients,
    closes: () => Object.fromEntries(closes),
    pauseReading: async (n, ms) => {
      const paused = sockets.slice(0, n).filter((s): s is WebSocket => s !== undefined);
      for (const socket of paused) socket.pause();
      await new Promise((r) => setTimeout(r, ms));
      for (const socket of paused) socket.resume();
    },
    close: () => {
      closing = true;
      for (const client of clients) client.close();
    },
  };
}
