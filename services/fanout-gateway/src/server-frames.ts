import { Type } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';
import { OFFSET_PATTERN } from '@ripple/registry';
import { MAX_REQUEST_ID_LENGTH } from './protocol.js';

/**
 * Server -> client frames (docs/protocol.md), as JSON Schemas: the contract that
 * docs/asyncapi-gateway.yaml publishes and that the end-to-end tests hold every received frame
 * to. The same JSON travels as WebSocket text frames and as the `data:` of SSE events named
 * after `op`.
 */
const Id = Type.Optional(
  Type.String({ maxLength: MAX_REQUEST_ID_LENGTH, description: 'The `id` of the client frame answered.' }),
);
const Channel = Type.String({ minLength: 1, maxLength: 200 });
const Offset = Type.String({ pattern: OFFSET_PATTERN.source, description: 'Position in the channel history.' });
const Epoch = Type.String({ minLength: 1, maxLength: 64, description: 'Names the history the offset belongs to.' });
const Code = Type.String({ pattern: '^[A-Z][A-Z0-9_]*$' });

function frame(op: string, description: string, properties: Record<string, TSchema>) {
  return Type.Object({ op: Type.Literal(op), ...properties }, { additionalProperties: false, description });
}

/** Server frames by `op` (`ack` answers both `subscribe` and `refresh`). */
export const ServerFrames = {
  welcome: frame('welcome', 'The first frame of every connection, once the token is verified.', {
    connectionId: Type.String(),
    node: Type.String(),
    user: Type.String(),
    heartbeatMs: Type.Integer({ minimum: 1 }),
  }),
  ack: Type.Union(
    [
      frame('ack', 'A subscription is in place (with `recovered`/`replayed` when `since` was given).', {
        id: Id,
        channel: Channel,
        offset: Offset,
        epoch: Epoch,
        recovered: Type.Optional(Type.Boolean()),
        replayed: Type.Optional(Type.Integer({ minimum: 0 })),
      }),
      frame('ack', 'A subscription ended at the client’s request.', { id: Id, channel: Channel }),
      frame('ack', 'A refreshed token took effect.', {
        id: Id,
        expiresAt: Type.Integer({ description: 'The new token’s `exp` (seconds since the epoch).' }),
      }),
    ],
    { description: 'The answer to subscribe, unsubscribe or refresh.' },
  ),
  event: frame('event', 'An event of a subscribed channel, in offset order.', {
    channel: Channel,
    offset: Offset,
    epoch: Epoch,
    event: Type.Object({}, { description: 'A CloudEvents envelope of the event catalog (docs/asyncapi.yaml).' }),
  }),
  gap: frame('gap', 'Events up to this position could not be delivered: refetch over REST, continue from here.', {
    channel: Channel,
    offset: Offset,
    epoch: Epoch,
    recovered: Type.Literal(false),
  }),
  pong: frame('pong', 'The answer to ping.', { id: Id }),
  refresh_required: frame('refresh_required', 'The token expires soon: send refresh with a new one.', {
    expiresAt: Type.Integer(),
  }),
  reconnect: frame('reconnect', 'The node is shutting down: reconnect (to any node) and recover with since.', {
    reason: Type.String(),
  }),
  unsubscribed: frame('unsubscribed', 'The server ended a subscription; the connection stays open.', {
    channel: Channel,
    code: Code,
    message: Type.String(),
  }),
  error: frame(
    'error',
    'A client frame was refused, or (SSE) a channel could not be subscribed or the stream failed.',
    {
      id: Id,
      channel: Type.Optional({
        ...Channel,
        description: 'SSE: the channel that could not be subscribed (the stream goes on without it).',
      }),
      code: Code,
      message: Type.String(),
    },
  ),
} as const;
