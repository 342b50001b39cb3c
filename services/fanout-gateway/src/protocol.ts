import { Type } from '@sinclair/typebox';
import type { Static } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { RawData } from 'ws';
import { RippleError } from '@ripple/errors';
import { OFFSET_PATTERN } from '@ripple/registry';
import type { StreamPosition } from '@ripple/registry';

/** Client -> server frames (docs/protocol.md). `id` is echoed in the answer. */
/** Longest `id` a client frame may carry (and an answer echoes). */
export const MAX_REQUEST_ID_LENGTH = 64;
const RequestId = Type.Optional(Type.String({ maxLength: MAX_REQUEST_ID_LENGTH }));
const Channel = Type.String({ minLength: 1, maxLength: 200 });

const Position = Type.Object(
  {
    offset: Type.String({ pattern: OFFSET_PATTERN.source }),
    epoch: Type.String({ minLength: 1, maxLength: 64 }),
  },
  { additionalProperties: false },
);

export const SubscribeFrame = Type.Object(
  {
    op: Type.Literal('subscribe'),
    id: RequestId,
    channel: Channel,
    /** Subscription token (chat channels). */
    token: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    /** Recover everything after this position. */
    since: Type.Optional(Position),
  },
  { additionalProperties: false },
);
export const UnsubscribeFrame = Type.Object(
  { op: Type.Literal('unsubscribe'), id: RequestId, channel: Channel },
  { additionalProperties: false },
);
export const PingFrame = Type.Object({ op: Type.Literal('ping'), id: RequestId }, { additionalProperties: false });
export const RefreshFrame = Type.Object(
  { op: Type.Literal('refresh'), id: RequestId, token: Type.String({ minLength: 1, maxLength: 4096 }) },
  { additionalProperties: false },
);

export const ClientFrame = Type.Union([SubscribeFrame, UnsubscribeFrame, PingFrame, RefreshFrame]);
export type ClientFrame = Static<typeof ClientFrame>;

const checkers = {
  subscribe: TypeCompiler.Compile(SubscribeFrame),
  unsubscribe: TypeCompiler.Compile(UnsubscribeFrame),
  ping: TypeCompiler.Compile(PingFrame),
  refresh: TypeCompiler.Compile(RefreshFrame),
} as const;

function isOp(op: unknown): op is keyof typeof checkers {
  return typeof op === 'string' && Object.hasOwn(checkers, op);
}

/** Parses one text frame; throws RippleError GW_BAD_JSON, GW_UNKNOWN_OP or GW_BAD_FRAME. */
export function parseClientFrame(text: string): ClientFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new RippleError('GW_BAD_JSON', 'frame is not valid JSON', { status: 400 });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RippleError('GW_BAD_FRAME', 'frame must be a JSON object', { status: 400 });
  }
  const op = (value as { op?: unknown }).op;
  if (!isOp(op)) {
    throw new RippleError('GW_UNKNOWN_OP', `unknown op ${JSON.stringify(op ?? null)}`, { status: 400 });
  }
  const checker = checkers[op];
  if (!checker.Check(value)) {
    const first = checker.Errors(value).First();
    throw new RippleError('GW_BAD_FRAME', `${op}: ${first ? `${first.path || '/'} ${first.message}` : 'invalid'}`, {
      status: 400,
    });
  }
  return value;
}

/** The text of a frame as `ws` hands it over (a Buffer by default, fragments as an array). */
export function frameText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.from(data).toString('utf8');
}

/** WebSocket close codes (docs/protocol.md). */
export const CloseCodes = {
  /** Missing, invalid, forged or expired token. */
  unauthorized: 4001,
  /** Too many messages for too long. */
  rateLimited: 4008,
  /** The send buffer overflowed: the client is too slow; reconnect. */
  slowConsumer: 4009,
  /** The node is shutting down; reconnect (to another node). */
  goingAway: 1001,
} as const;

/** Serialises an event frame; done once per channel and shared by every socket on it. */
export function eventFrame(channel: string, offset: string, epoch: string, eventJson: string): string {
  return `${eventFrameHead(channel, offset, epoch)}${eventJson}}`;
}

/** An event frame up to its event: the frame is this head, the event's JSON, then `}`. */
export function eventFrameHead(channel: string, offset: string, epoch: string): string {
  return `{"op":"event","channel":${JSON.stringify(channel)},"offset":"${offset}","epoch":"${epoch}","event":`;
}

/**
 * The `gap` frame: events of `channel` up to `position` could not be delivered (history lost or
 * trimmed); the client refetches the channel's state over REST and continues from `position`,
 * exactly as after an `ack` with `recovered: false`.
 */
export function gapFrame(channel: string, position: StreamPosition): { op: 'gap' } & Record<string, unknown> {
  return { op: 'gap' as const, channel, offset: position.offset, epoch: position.epoch, recovered: false };
}
