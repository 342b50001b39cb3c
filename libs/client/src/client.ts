import type { AnyEvent } from '@ripple/events';
import { backoffDelay } from './backoff.js';
import type { BackoffOptions } from './backoff.js';
import { RecentKeys } from './dedupe.js';
import type { ServerFrame, StreamPosition } from './frames.js';
import { openSse, openWebSocket } from './transport.js';
import type { Transport, TransportHandlers, WebSocketConstructor } from './transport.js';

/** `connecting` → `connected` (welcome received) → `disconnected` (retrying) → …; `closed` is final. */
export type ConnectionState = 'connecting' | 'connected' | 'disconnected' | 'closed';

/** Where an event sits: its channel and its position in that channel's history. */
export interface EventContext extends StreamPosition {
  readonly channel: string;
}

/** A refusal from the gateway (`code` as in docs/protocol.md) or from the client (`CLIENT_*`). */
export class RippleClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'RippleClientError';
  }
}

const invalid = (message: string) => new RippleClientError('CLIENT_OPTIONS_INVALID', message);
const positive = (n: unknown) => typeof n === 'number' && Number.isFinite(n) && n > 0;

/**
 * Throws RippleClientError CLIENT_OPTIONS_INVALID, at once, for options the client could not
 * work with (rather than failing later, or reconnecting in a tight loop).
 */
function checkOptions(options: ClientOptions | undefined): void {
  if (typeof options !== 'object' || options === null) throw invalid('createClient needs an options object');
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw invalid(`url must be a ws:// or wss:// URL, got ${JSON.stringify(options.url)}`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:')
    throw invalid(`url must be ws:// or wss://, got ${url.protocol}`);
  if (typeof options.getToken !== 'function') throw invalid('getToken must be a function returning a token');
  if (options.getSubscriptionToken !== undefined && typeof options.getSubscriptionToken !== 'function')
    throw invalid('getSubscriptionToken must be a function');
  const { transports, backoff, dedupeWindow } = options;
  if (
    transports !== undefined &&
    (!Array.isArray(transports) || transports.length === 0 || transports.some((t) => t !== 'websocket' && t !== 'sse'))
  )
    throw invalid("transports must be a non-empty list of 'websocket' and 'sse'");
  if (backoff !== undefined) {
    const { initialMs = 500, maxMs = 20_000 } = backoff;
    if (!positive(initialMs) || !positive(maxMs) || initialMs > maxMs)
      throw invalid('backoff needs initialMs and maxMs as positive numbers of ms, initialMs ≤ maxMs');
  }
  if (dedupeWindow !== undefined && !(Number.isInteger(dedupeWindow) && dedupeWindow > 0))
    throw invalid('dedupeWindow must be a positive integer');
}

export interface SubscriptionHandlers {
  /** Each event once, in channel order. `event.type` narrows `event.data` (the event catalog). */
  onEvent: (event: AnyEvent, context: EventContext) => void;
  /**
   * Events of the channel were missed and cannot be replayed (history trimmed or lost, or the
   * client was away too long): refetch the channel's state over REST. Events that follow are
   * delivered as usual from `position` on.
   */
  onGap?: (position: EventContext) => void;
  /** The subscription ended after it was ready (revoked by the server, or refused on resubscribe). */
  onError?: (error: RippleClientError) => void;
}

export interface Subscription {
  readonly channel: string;
  /** Resolves on the first `ack`; rejects with a RippleClientError carrying the gateway's code. */
  readonly ready: Promise<void>;
  unsubscribe(): void;
}

export interface ClientOptions {
  /** The gateway's WebSocket URL, e.g. `ws://127.0.0.1:8080/ws`; SSE uses the same URL with `/sse` and http(s). */
  readonly url: string;
  /** An access token (JWT); called before every connection and when the gateway asks for a refresh. */
  readonly getToken: () => Promise<string>;
  /** A subscription token for a `chat:<roomId>` channel (chat-service `GET /rooms/:id/subscription-token`). */
  readonly getSubscriptionToken?: (channel: string) => Promise<string>;
  /** WebSocket constructor; default `globalThis.WebSocket` (pass `ws`'s on Node 20). */
  readonly WebSocket?: WebSocketConstructor;
  /** fetch for SSE; default `globalThis.fetch`. */
  readonly fetch?: typeof fetch;
  /** Transports in order of preference (default `['websocket', 'sse']`). */
  readonly transports?: readonly ('websocket' | 'sse')[];
  /** Reconnect delays (full jitter): `initialMs` 500, `maxMs` 20000 by default. */
  readonly backoff?: BackoffOptions;
  /** How many recent event ids per client are remembered for de-duplication (default 2000). */
  readonly dedupeWindow?: number;
}

export interface RippleClient {
  readonly state: ConnectionState;
  /** Calls `listener` on every state change; returns a function that removes it. */
  on(event: 'state', listener: (state: ConnectionState) => void): () => void;
  /** Subscribes (queued while offline); one subscription per channel. */
  subscribe(channel: string, handlers: SubscriptionHandlers): Subscription;
  /** Closes the connection for good; pending `ready` promises reject with CLIENT_CLOSED. */
  close(): void;
}

interface Entry {
  readonly channel: string;
  readonly handlers: SubscriptionHandlers;
  position: StreamPosition | undefined;
  isReady: boolean;
  /** Resubscribes in a row the gateway refused with a retriable code (backoff attempt). */
  retries: number;
  resolve: () => void;
  reject: (error: RippleClientError) => void;
}

/**
 * Refusals of a subscribe that say "retry" (docs/protocol.md): the gateway could not load what the
 * channel needs just now. A resubscribe refused so is retried with backoff; a first subscribe
 * still rejects `ready`.
 */
const RETRIABLE_REFUSALS = new Set(['GW_FEED_UNAVAILABLE']);

/** WebSocket attempts that fail before opening, in a row, before the client falls back to SSE. */
const WEBSOCKET_FAILURES_BEFORE_SSE = 2;

const sseUrlOf = (url: string): string => {
  const u = new URL(url);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  u.pathname = u.pathname.replace(/\/ws$/, '') + '/sse';
  return u.toString();
};
const subjectOf = (token: string): string => {
  try {
    const payload = token.split('.')[1] ?? '';
    return (JSON.parse(atob(payload.replace(/-/g, '+').replace(/_/g, '/'))) as { sub?: string }).sub ?? '';
  } catch {
    return '';
  }
};
const after = (a: string, b: string): boolean => Number(a) > Number(b);

/**
 * Runs `fn` once the input that is already waiting has been read: Node's `setImmediate` (after
 * this turn's I/O), else a later task (browsers queue arrived messages as earlier tasks).
 */
function afterPendingInput(fn: () => void): void {
  const immediate = (globalThis as { setImmediate?: (fn: () => void) => unknown }).setImmediate;
  if (immediate) immediate(fn);
  else setTimeout(fn, 0);
}

/**
 * Creates a client of the Ripple gateway (docs/protocol.md) and connects at once. It reconnects
 * with exponential backoff and full jitter, resubscribes every channel from its last position
 * (`since`), reports unrecoverable gaps through `onGap`, drops duplicates by event id, keeps
 * each channel in order across reconnects, refreshes the token when asked, and falls back to
 * SSE when WebSocket cannot connect. See libs/client/README.md.
 */
export function createClient(options: ClientOptions): RippleClient {
  checkOptions(options);
  const WebSocketCtor =
    options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ?? undefined;
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  let kinds = (options.transports ?? ['websocket', 'sse']).filter((k) => k === 'sse' || WebSocketCtor);
  const entries = new Map<string, Entry>();
  const recent = new RecentKeys(options.dedupeWindow ?? 2000);
  const listeners = new Set<(state: ConnectionState) => void>();
  const pendingIds = new Map<string, string>(); // request id -> channel
  let state: ConnectionState = 'connecting';
  let transport: Transport | undefined;
  let attempt = 0;
  let wsFailures = 0;
  let nextId = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let liveness: ReturnType<typeof setInterval> | undefined;
  let lastSeen = 0;
  let sseReopen = false;
  /** Subscriptions waiting to be retried (`retryLater`); cleared on close. */
  const retries = new Set<ReturnType<typeof setTimeout>>();

  // A function, not `state === 'closed'` inline: TypeScript would keep a narrowing across awaits.
  const isClosed = (): boolean => state === 'closed';
  const setState = (next: ConnectionState): void => {
    if (state === next) return;
    state = next;
    for (const listener of listeners) listener(next);
  };

  const schedule = (delayMs: number): void => {
    clearTimeout(timer);
    timer = setTimeout(() => void connect(), delayMs);
  };

  const drop = (): void => {
    clearInterval(liveness);
    transport?.close();
    transport = undefined;
    pendingIds.clear();
  };

  /** The transport ended: decide, by close code, how soon to come back (docs/protocol.md). */
  const onLost = (code: number, reason: string, opened: boolean, kind: Transport['kind']): void => {
    drop();
    if (state === 'closed') return;
    setState('disconnected');
    if (kind === 'websocket' && !opened && kinds.includes('sse')) {
      if (++wsFailures >= WEBSOCKET_FAILURES_BEFORE_SSE) kinds = ['sse'];
    }
    // SSE: a channel the gateway refused before the stream started (403/400) refuses the whole
    // stream; the subscriptions not acknowledged yet are the ones it refused.
    if ((code === 4403 || code === 4400) && [...entries.values()].some((e) => !e.isReady)) {
      for (const entry of [...entries.values()]) if (!entry.isReady) fail(entry, reason, 'refused by the gateway');
      schedule(0);
      return;
    }
    const quick = backoffDelay(0, options.backoff);
    switch (code) {
      case 4001: // the token expired or was refused: a fresh one, at once the first time
        schedule(attempt++ === 0 ? 0 : backoffDelay(attempt, options.backoff));
        return;
      case 4008: // rate limited: back off to the cap
        attempt = Math.max(attempt, 30);
        schedule((options.backoff?.maxMs ?? 20_000) / 2 + backoffDelay(attempt, options.backoff) / 2);
        return;
      case 1001: // node draining: any other node will do
      case 4009: // slow consumer: come back and recover
      case 4503:
        schedule(quick);
        return;
      default:
        schedule(backoffDelay(attempt++, options.backoff));
    }
  };

  const connect = async (): Promise<void> => {
    if (state === 'closed') return;
    drop();
    setState('connecting');
    let token: string;
    try {
      token = await options.getToken();
    } catch {
      if (isClosed()) return;
      setState('disconnected');
      schedule(backoffDelay(attempt++, options.backoff));
      return;
    }
    const kind = kinds[0] ?? 'sse';
    if (kind === 'sse') await prepareChatTokens();
    if (isClosed()) return;
    const handlers: TransportHandlers = {
      onOpen: () => {
        if (kind === 'websocket') wsFailures = 0;
      },
      onActivity: () => (lastSeen = Date.now()),
      onFrame: (frame) => {
        if (transport === current) handle(frame);
      },
      onClose: (code, reason, opened) => {
        if (transport === current) onLost(code, reason, opened, kind);
      },
    };
    let current: Transport;
    if (kind === 'websocket' && WebSocketCtor) {
      const url = new URL(options.url);
      url.searchParams.set('access_token', token);
      current = openWebSocket(WebSocketCtor, url.toString(), handlers);
    } else {
      current = openSse(fetchImpl, sseUrlFor(token), sseHeaders(token), handlers);
    }
    transport = current;
  };

  const sseUrlFor = (token: string): string => {
    const url = new URL(sseUrlOf(options.url));
    const channels = [...entries.keys()];
    url.searchParams.set('channels', channels.length > 0 ? channels.join(',') : `user:${subjectOf(token)}`);
    const chat = channels.find((c) => c.startsWith('chat:'));
    const chatToken = chat === undefined ? undefined : subscriptionTokens.get(chat);
    if (chatToken) url.searchParams.set('subscription_token', chatToken);
    return url.toString();
  };

  /** `Last-Event-ID` encodes every channel's position (docs/protocol.md, SSE). */
  const sseHeaders = (token: string): Record<string, string> => {
    const positions: Record<string, [string, string]> = {};
    for (const entry of entries.values()) {
      if (entry.position) positions[entry.channel] = [entry.position.offset, entry.position.epoch];
    }
    const id = btoa(JSON.stringify(positions)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    return { authorization: `Bearer ${token}`, 'last-event-id': id };
  };

  // SSE sends one chat subscription token in the URL; it is fetched before the stream opens.
  const subscriptionTokens = new Map<string, string>();

  const reopenSse = (): void => {
    if (sseReopen) return;
    sseReopen = true;
    queueMicrotask(() => {
      sseReopen = false;
      if (transport?.kind === 'sse' && state !== 'closed') void connect();
    });
  };

  const prepareChatTokens = async (): Promise<void> => {
    for (const channel of entries.keys()) {
      if (!channel.startsWith('chat:')) continue;
      const token = await subscriptionToken(channel).catch(() => undefined);
      if (token) subscriptionTokens.set(channel, token);
      break; // one per stream
    }
  };

  const subscriptionToken = async (channel: string): Promise<string | undefined> => {
    if (!channel.startsWith('chat:')) return undefined;
    if (!options.getSubscriptionToken) throw new RippleClientError('CLIENT_NO_SUBSCRIPTION_TOKEN', channel);
    return options.getSubscriptionToken(channel);
  };

  const sendSubscribe = async (entry: Entry): Promise<void> => {
    const on = transport;
    if (on?.kind !== 'websocket') return;
    let token: string | undefined;
    try {
      token = await subscriptionToken(entry.channel);
    } catch (err) {
      const code = err instanceof RippleClientError ? err.code : 'CLIENT_SUBSCRIPTION_TOKEN_FAILED';
      fail(entry, code, `no subscription token for ${entry.channel}`);
      return;
    }
    if (transport !== on || entries.get(entry.channel) !== entry) return;
    const id = String(++nextId);
    pendingIds.set(id, entry.channel);
    on.send({
      op: 'subscribe',
      id,
      channel: entry.channel,
      ...(token !== undefined && { token }),
      ...(entry.position && { since: entry.position }),
    });
  };

  const fail = (entry: Entry, code: string, message: string): void => {
    if (entries.get(entry.channel) === entry) entries.delete(entry.channel);
    const error = new RippleClientError(code, message);
    if (entry.isReady) entry.handlers.onError?.(error);
    else entry.reject(error);
  };

  /**
   * Subscribes `entry` again after its backoff, on the same connection (over SSE: a new stream,
   * which has no upstream to subscribe on); nothing if the connection or the entry is gone by then.
   */
  const retryLater = (entry: Entry): void => {
    const on = transport;
    const retry = setTimeout(
      () => {
        retries.delete(retry);
        if (transport !== on || entries.get(entry.channel) !== entry) return;
        if (on?.kind === 'sse') reopenSse();
        else void sendSubscribe(entry);
      },
      backoffDelay(entry.retries++, options.backoff),
    );
    retries.add(retry);
  };

  const gap = (entry: Entry, position: StreamPosition): void => {
    entry.position = position;
    entry.handlers.onGap?.({ channel: entry.channel, ...position });
  };

  const handle = (frame: ServerFrame): void => {
    switch (frame.op) {
      case 'welcome': {
        attempt = 0;
        setState('connected');
        lastSeen = Date.now();
        const on = transport;
        clearInterval(liveness);
        liveness = setInterval(() => {
          if (!on || transport !== on) return;
          // A connection silent for two heartbeats is dead even if no close came (half-open TCP).
          // Judged in a later task: after a stall (a busy event loop, throttled timers) this timer
          // runs before the frames that arrived meanwhile are read, and they prove it alive.
          afterPendingInput(() => {
            if (transport !== on) return;
            const silentMs = Date.now() - lastSeen;
            if (silentMs > 2 * frame.heartbeatMs) onLost(1006, 'heartbeat timeout', true, on.kind);
            // Only a connection silent for a heartbeat is asked for a sign of life: events and the
            // server's own pings already prove the others alive (and a ping per client per
            // heartbeat was a frame each way through every hop, for every idle client).
            else if (silentMs >= frame.heartbeatMs) on.send({ op: 'ping' });
          });
        }, frame.heartbeatMs);
        for (const entry of entries.values()) void sendSubscribe(entry);
        return;
      }
      case 'ack': {
        const { channel, offset, epoch } = frame;
        if (channel === undefined || offset === undefined || epoch === undefined) return; // refresh/unsubscribe
        if (frame.id !== undefined) pendingIds.delete(frame.id);
        const entry = entries.get(channel);
        if (!entry) return;
        entry.retries = 0;
        const had = entry.position;
        const ahead = !had || had.epoch !== epoch || after(offset, had.offset);
        if (frame.recovered === false && ahead) gap(entry, { offset, epoch });
        else if (frame.recovered !== true && ahead) entry.position = { offset, epoch };
        if (!entry.isReady) {
          entry.isReady = true;
          entry.resolve();
        }
        return;
      }
      case 'event': {
        const entry = entries.get(frame.channel);
        if (!entry) return;
        const { offset, epoch } = frame;
        const had = entry.position;
        if (had && had.epoch === epoch && !after(offset, had.offset)) return; // already delivered
        if (had && (had.epoch !== epoch || Number(offset) > Number(had.offset) + 1)) {
          gap(entry, { offset: String(Number(offset) - 1), epoch });
        }
        entry.position = { offset, epoch };
        if (recent.seen(`${frame.channel}\n${frame.event.id}`)) return;
        entry.handlers.onEvent(frame.event, { channel: frame.channel, offset, epoch });
        return;
      }
      case 'gap': {
        const entry = entries.get(frame.channel);
        if (entry) gap(entry, { offset: frame.offset, epoch: frame.epoch });
        return;
      }
      case 'unsubscribed': {
        const entry = entries.get(frame.channel);
        if (entry) fail(entry, frame.code, frame.message);
        return;
      }
      case 'error': {
        // A WebSocket error answers a request id; an SSE stream's names the channel it refused.
        const channel = frame.id === undefined ? frame.channel : pendingIds.get(frame.id);
        const entry = channel === undefined ? undefined : entries.get(channel);
        if (frame.id !== undefined) pendingIds.delete(frame.id);
        if (!entry) return;
        // A refusal that says "retry" (the first subscribe's too) is reported and retried: the
        // subscription stays, and `ready` settles once the gateway acknowledges it.
        if (RETRIABLE_REFUSALS.has(frame.code)) {
          entry.handlers.onError?.(new RippleClientError(frame.code, frame.message));
          retryLater(entry);
          return;
        }
        fail(entry, frame.code, frame.message);
        return;
      }
      case 'refresh_required': {
        const on = transport;
        if (on?.kind === 'sse') {
          reopenSse(); // SSE has no upstream: a new stream with a fresh token recovers every channel
          return;
        }
        options.getToken().then(
          (token) => transport === on && on?.send({ op: 'refresh', token }),
          () => undefined, // the gateway closes with 4001 at expiry; reconnecting fetches a token again
        );
        return;
      }
      case 'reconnect':
        // The node is draining: leave now, to any other node (the close comes next anyway).
        onLost(1001, frame.reason, true, transport?.kind ?? 'websocket');
        return;
      case 'pong':
        return;
    }
  };

  const onOnline = (): void => {
    if (state === 'disconnected') {
      attempt = 0;
      schedule(0);
    }
  };
  const onOffline = (): void => {
    if (transport) onLost(1006, 'offline', true, transport.kind);
  };
  const events = globalThis as {
    addEventListener?: (type: string, listener: () => void) => void;
    removeEventListener?: (type: string, listener: () => void) => void;
  };
  events.addEventListener?.('online', onOnline);
  events.addEventListener?.('offline', onOffline);

  void connect();

  return {
    get state() {
      return state;
    },
    on(_event, listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    subscribe(channel, handlers) {
      if (typeof (handlers as Partial<SubscriptionHandlers> | undefined)?.onEvent !== 'function')
        throw invalid('subscribe needs handlers with an onEvent function');
      if (entries.has(channel))
        throw new RippleClientError('CLIENT_ALREADY_SUBSCRIBED', `already subscribed: ${channel}`);
      let resolve!: () => void;
      let reject!: (error: RippleClientError) => void;
      const ready = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      ready.catch(() => undefined); // a rejection nobody awaits must not crash the process
      const entry: Entry = { channel, handlers, position: undefined, isReady: false, retries: 0, resolve, reject };
      if (state === 'closed') entry.reject(new RippleClientError('CLIENT_CLOSED', 'the client is closed'));
      else entries.set(channel, entry);
      if (state === 'connected') {
        if (transport?.kind === 'sse') reopenSse();
        else void sendSubscribe(entry);
      }
      return {
        channel,
        ready,
        unsubscribe: () => {
          if (entries.get(channel) !== entry) return;
          entries.delete(channel);
          entry.reject(new RippleClientError('CLIENT_UNSUBSCRIBED', `unsubscribed from ${channel}`));
          if (state !== 'connected') return;
          if (transport?.kind === 'sse') reopenSse();
          else transport?.send({ op: 'unsubscribe', id: String(++nextId), channel });
        },
      };
    },
    close() {
      if (state === 'closed') return;
      setState('closed');
      clearTimeout(timer);
      for (const retry of retries) clearTimeout(retry);
      retries.clear();
      drop();
      events.removeEventListener?.('online', onOnline);
      events.removeEventListener?.('offline', onOffline);
      for (const entry of entries.values()) {
        if (!entry.isReady) entry.reject(new RippleClientError('CLIENT_CLOSED', 'the client is closed'));
      }
      entries.clear();
      listeners.clear();
    },
  };
}
