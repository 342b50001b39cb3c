import type { ClientRequest } from 'node:http';
import { WebSocket } from 'ws';
import { createClient } from '@ripple/client';
import type { RippleClient } from '@ripple/client';
import { waitUntil } from '@ripple/testing';
import type { Cluster } from './cluster.js';
import type { Ledger } from './ledger.js';
import type { Timelines } from './timeline.js';

/** Clients of a scenario, each following one creator channel, every event noted in the ledger. */
export interface Fleet {
  readonly clients: readonly RippleClient[];
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
): Promise<Fleet> {
  const clients: RippleClient[] = [];
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
    // ws's constructor, remembering this client's current socket (to pause it).
    const Tracked = class extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        sockets[i] = this;
        timelines?.mark(id, 'attempt');
        if (timelines) {
          const request = (this as unknown as { _req?: ClientRequest })._req;
          request?.once('socket', (socket) => {
            socket.once('connect', () => {
              const port = socket.localPort;
              if (port === undefined) return;
              byPort.set(port, id);
              for (const [step, at] of early.get(port) ?? []) timelines.mark(id, step, undefined, at);
              early.delete(port);
            });
          });
        }
        let settled = false; // welcome and ack seen: later frames are not looked at
        this.on('open', () => timelines?.mark(id, 'open'));
        this.on('message', (data: Buffer) => {
          if (settled) return;
          const text = data.toString();
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
        this.on('close', (code) => {
          if (closing) return;
          ledger.closed(code);
          timelines?.mark(id, 'close', code);
        });
      }
    };
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
  const worker = async (): Promise<void> => {
    while (next < count) await connectOne(next++);
  };
  await Promise.all(Array.from({ length: Math.min(CONNECTING, count) }, worker));
  return {
    clients,
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
