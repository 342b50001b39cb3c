import type { AnyEvent } from '@ripple/events';

/** A channel's position: `offset` is a decimal sequence number within the history `epoch`. */
export interface StreamPosition {
  readonly offset: string;
  readonly epoch: string;
}

/** Server -> client frames (docs/protocol.md, "Server → client"). */
export type ServerFrame =
  | { op: 'welcome'; connectionId: string; node: string; user: string; heartbeatMs: number }
  | {
      op: 'ack';
      id?: string;
      channel?: string;
      offset?: string;
      epoch?: string;
      recovered?: boolean;
      replayed?: number;
      expiresAt?: number;
    }
  | { op: 'event'; channel: string; offset: string; epoch: string; event: AnyEvent }
  | { op: 'gap'; channel: string; offset: string; epoch: string; recovered: false }
  | { op: 'pong'; id?: string }
  | { op: 'refresh_required'; expiresAt: number }
  | { op: 'reconnect'; reason: string }
  | { op: 'unsubscribed'; channel: string; code: string; message: string }
  | { op: 'error'; id?: string; channel?: string; code: string; message: string };

const OFFSET = /^(0|[1-9]\d{0,14})$/;
const str = (v: unknown): v is string => typeof v === 'string';
const opt = (v: unknown, check: (v: unknown) => boolean): boolean => v === undefined || check(v);
const isPosition = (f: Record<string, unknown>): boolean =>
  str(f.channel) && str(f.offset) && OFFSET.test(f.offset) && str(f.epoch);

/**
 * Parses and validates one server frame (a WebSocket text frame or an SSE `data:` line).
 * Returns undefined for anything that is not a well-formed frame of a known op: the client
 * ignores it rather than acting on a frame it does not understand.
 */
export function parseServerFrame(text: string): ServerFrame | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const f = value as Record<string, unknown>;
  const ok = (() => {
    switch (f.op) {
      case 'welcome':
        return str(f.user) && typeof f.heartbeatMs === 'number';
      case 'ack':
        return opt(f.id, str) && opt(f.channel, str) && (f.offset === undefined || isPosition(f));
      case 'event': {
        const event = f.event as Record<string, unknown> | null;
        return isPosition(f) && typeof event === 'object' && event !== null && str(event.id) && str(event.type);
      }
      case 'gap':
        return isPosition(f);
      case 'pong':
      case 'reconnect':
        return true;
      case 'refresh_required':
        return typeof f.expiresAt === 'number';
      case 'unsubscribed':
        return str(f.channel) && str(f.code);
      case 'error':
        return str(f.code) && opt(f.id, str) && opt(f.channel, str);
      default:
        return false;
    }
  })();
  return ok ? (f as ServerFrame) : undefined;
}
