import { Type } from '@sinclair/typebox';
import type { TObject } from '@sinclair/typebox';
import { errorKind } from '@ripple/errors';
import type { ErrorKind } from '@ripple/errors';
import { HttpErrors, addErrorResponses } from '@ripple/http';

/**
 * The gateway's HTTP surface as fastify schemas: they validate /sse's and /ws's query and headers,
 * and @fastify/swagger serves them as the OpenAPI document at /docs/json (with /healthz, /readyz
 * and /metrics from @ripple/http). What flows on an open stream or socket is the AsyncAPI
 * document's (docs/asyncapi-gateway.yaml).
 */

/** The errors the gateway answers over HTTP, before a stream or socket starts. */
export const GatewayHttpErrors = {
  /** `channels` is empty or blank. */
  badRequest: errorKind('GW_BAD_REQUEST', 400),
  channelInvalid: errorKind('GW_CHANNEL_INVALID', 400),
  tooManySubscriptions: errorKind('GW_TOO_MANY_SUBSCRIPTIONS', 400),
  subscribeForbidden: errorKind('GW_SUBSCRIBE_FORBIDDEN', 403),
  /** A page of an origin outside WS_ORIGINS asked for /ws, or outside CORS_ORIGINS for /sse. */
  originForbidden: errorKind('GW_ORIGIN_FORBIDDEN', 403),
  /**
   * The WebSocket handshake of a `GET /ws` upgrade is not one (`Upgrade` not `websocket`, a
   * missing or malformed `Sec-WebSocket-Key`, a `Sec-WebSocket-Version` other than 13 or 8, ...);
   * `field` names the header.
   */
  handshakeInvalid: errorKind('GW_HANDSHAKE_INVALID', 400),
  /** A plain HTTP GET of /ws: the WebSocket handshake is required. */
  upgradeRequired: errorKind('GW_UPGRADE_REQUIRED', 426),
  draining: errorKind('GW_DRAINING', 503, { retriable: true, refusal: true }),
} as const;

/** The schemes a gateway operation accepts (either): `securitySchemes` of the document. */
export const GatewaySecuritySchemes = {
  bearerAuth: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'An access token (JWT) whose `sub` is the user id.',
  },
  accessToken: {
    type: 'apiKey',
    in: 'query',
    name: 'access_token',
    description: 'The same access token in the query, for browsers (EventSource and WebSocket cannot set headers).',
  },
} as const;

const security = [{ bearerAuth: [] }, { accessToken: [] }];

const AccessTokenQuery = Type.String({ minLength: 1, description: 'The access token, when no Authorization header.' });
const AuthorizationHeader = Type.String({ description: '`Bearer <access token>`.' });

/** `GET /sse`'s query: which channels, the tokens, where to resume. */
export const SseQuery: TObject = Type.Object(
  {
    channels: Type.String({
      minLength: 1,
      description: 'Comma-separated channels (`creator:u1,post:p1`); `user:<sub>` is always joined.',
    }),
    access_token: Type.Optional(AccessTokenQuery),
    subscription_token: Type.Optional(
      Type.String({ minLength: 1, description: "chat-service's subscription token for the one `chat:` channel." }),
    ),
    last_event_id: Type.Optional(
      Type.String({ description: 'As the Last-Event-ID header, for clients that cannot set it.' }),
    ),
  },
  // A misspelt parameter (`chanels`, `acess_token`) is refused, not ignored.
  { additionalProperties: false },
);

/** `GET /sse`'s headers. */
export const SseHeaders: TObject = Type.Object({
  authorization: Type.Optional(AuthorizationHeader),
  origin: Type.Optional(Type.String({ description: 'A browser page: checked against CORS_ORIGINS.' })),
  'last-event-id': Type.Optional(
    Type.String({ description: 'The `id` of the last event received: every channel resumes after it.' }),
  ),
});

/** `GET /ws`'s query. */
export const WebSocketQuery: TObject = Type.Object(
  { access_token: Type.Optional(AccessTokenQuery) },
  { additionalProperties: false },
);

/** `GET /ws`'s headers (the handshake's own are the WebSocket protocol's). */
export const WebSocketHeaders: TObject = Type.Object({
  authorization: Type.Optional(AuthorizationHeader),
  origin: Type.Optional(Type.String({ description: 'Checked against WS_ORIGINS when that is set.' })),
});

function responses(success: Record<string, unknown>, kinds: readonly ErrorKind[]): Record<string, unknown> {
  const response: Record<string, unknown> = { ...success };
  addErrorResponses(response, [...kinds, HttpErrors.internal]);
  return response;
}

/** The fastify schema of `GET /sse`. */
export const SseSchema: Record<string, unknown> = {
  tags: ['gateway'],
  summary: 'A Server-Sent Events stream of channels (the frames of docs/asyncapi-gateway.yaml, event name = op).',
  security,
  querystring: SseQuery,
  headers: SseHeaders,
  response: responses(
    {
      200: {
        description: 'The stream: `welcome`, an `ack` per channel, then `event` and the other server frames.',
        headers: {
          'x-accel-buffering': {
            type: 'string',
            enum: ['no'],
            description: 'Always `no`: tells a buffering reverse proxy (nginx) to pass each event on at once.',
          },
        },
        content: { 'text/event-stream': { schema: Type.String() } },
      },
    },
    [
      HttpErrors.validationFailed,
      GatewayHttpErrors.originForbidden,
      GatewayHttpErrors.badRequest,
      GatewayHttpErrors.channelInvalid,
      GatewayHttpErrors.tooManySubscriptions,
      HttpErrors.tokenMissing,
      HttpErrors.tokenInvalid,
      HttpErrors.tokenExpired,
      GatewayHttpErrors.subscribeForbidden,
      GatewayHttpErrors.draining,
    ],
  ),
};

/** The WebSocket versions the gateway speaks (`ws`'s), as a refused handshake lists them. */
export const WEBSOCKET_VERSIONS = '13, 8';

/**
 * The fastify schema of `GET /ws`. Authentication happens after the upgrade (a bad token closes
 * the socket with 4001, docs/protocol.md), so the HTTP answers are the handshake's.
 */
export const WebSocketSchema: Record<string, unknown> = {
  tags: ['gateway'],
  summary: 'The WebSocket endpoint (the protocol of docs/asyncapi-gateway.yaml).',
  security,
  querystring: WebSocketQuery,
  headers: WebSocketHeaders,
  response: responses(
    {
      101: { type: 'null', description: 'Switching Protocols: the socket is open.' },
      // Kept by addErrorResponses when it adds the 400 error body.
      400: {
        headers: {
          'sec-websocket-version': {
            type: 'string',
            enum: [WEBSOCKET_VERSIONS],
            description: 'On GW_HANDSHAKE_INVALID for a missing or unknown Sec-WebSocket-Version: the versions spoken.',
          },
        },
      },
    },
    [
      HttpErrors.validationFailed,
      GatewayHttpErrors.handshakeInvalid,
      GatewayHttpErrors.originForbidden,
      GatewayHttpErrors.upgradeRequired,
    ],
  ),
};
