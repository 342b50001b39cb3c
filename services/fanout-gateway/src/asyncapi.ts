import { stringify } from 'yaml';
import { Catalog } from '@ripple/events';
import { PingFrame, RefreshFrame, SubscribeFrame, UnsubscribeFrame } from './protocol.js';
import { ServerFrames } from './server-frames.js';
import { SseQuery, WebSocketQuery } from './http-contract.js';

/** A plain JSON Schema (TypeBox's symbol keys dropped). */
function jsonSchema(schema: unknown): Record<string, unknown> {
  return JSON.parse(JSON.stringify(schema)) as Record<string, unknown>;
}

const ClientFrames = {
  subscribe: SubscribeFrame,
  unsubscribe: UnsubscribeFrame,
  ping: PingFrame,
  refresh: RefreshFrame,
} as const;

const ref = (kind: 'messages' | 'schemas', name: string) => ({ $ref: `#/components/${kind}/${name}` });

/**
 * docs/asyncapi-gateway.yaml: the WebSocket and SSE protocol as an AsyncAPI 3 document, generated
 * from the frame schemas the gateway validates with (client frames, protocol.ts) and publishes
 * (server frames, server-frames.ts); an `event` frame's envelope is one of the catalog's. `pnpm
 * asyncapi` writes it; a test compares.
 */
export function renderGatewayAsyncApi(): string {
  const messages: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = {};
  for (const [op, schema] of Object.entries(ClientFrames)) {
    messages[op] = { name: op, title: `${op} (client)`, payload: ref('schemas', `${op}Frame`) };
    schemas[`${op}Frame`] = jsonSchema(schema);
  }
  const events = Object.values(Catalog);
  for (const [op, schema] of Object.entries(ServerFrames)) {
    const json = jsonSchema(schema);
    if (op === 'event') {
      const properties = json.properties as Record<string, unknown>;
      properties.event = {
        description: 'A CloudEvents envelope of the event catalog (the same as on Kafka, docs/asyncapi.yaml).',
        oneOf: events.map((e) => ref('schemas', e.type)),
      };
    }
    messages[op] = { name: op, title: `${op} (server)`, payload: ref('schemas', `${op}Frame`) };
    schemas[`${op}Frame`] = json;
  }
  for (const e of events) schemas[e.type] = jsonSchema(e.schema);
  const serverMessages = Object.keys(ServerFrames);
  const channelMessages = (names: string[]) => Object.fromEntries(names.map((n) => [n, ref('messages', n)]));
  const doc = {
    asyncapi: '3.0.0',
    info: {
      title: 'Ripple gateway protocol',
      version: '1.0.0',
      description:
        "Generated from services/fanout-gateway (protocol.ts, server-frames.ts, http-contract.ts). Do not edit: run `pnpm asyncapi`. JSON text frames over GET /ws, and the server frames as Server-Sent Events over GET /sse (the SSE event name is the frame's op). The HTTP answers before a socket or stream starts (refusals, 426, 403) are in the gateway's OpenAPI document, GET /docs/json. docs/protocol.md explains the protocol: connecting, recovery, close codes, error codes.",
    },
    defaultContentType: 'application/json',
    servers: {
      webSocket: {
        host: '127.0.0.1:8080',
        protocol: 'ws',
        description: 'A gateway node (any node: no sticky sessions).',
        security: [{ $ref: '#/components/securitySchemes/accessToken' }],
      },
      http: {
        host: '127.0.0.1:8080',
        protocol: 'http',
        description: 'The same node, for Server-Sent Events.',
        security: [{ $ref: '#/components/securitySchemes/accessToken' }],
      },
    },
    channels: {
      webSocket: {
        address: '/ws',
        title: 'WebSocket',
        description: 'Access token as `Authorization: Bearer` or `?access_token=`; joins `user:<sub>` before welcome.',
        servers: [{ $ref: '#/servers/webSocket' }],
        messages: channelMessages([...Object.keys(ClientFrames), ...serverMessages]),
        bindings: {
          ws: {
            method: 'GET',
            // The schema that validates /ws's query (http-contract.ts; also in the OpenAPI document).
            query: jsonSchema(WebSocketQuery),
            bindingVersion: '0.1.0',
          },
        },
      },
      serverSentEvents: {
        address: '/sse',
        title: 'Server-Sent Events',
        description:
          'GET /sse?channels=a,b&access_token=…[&subscription_token=…]; Last-Event-ID (or ?last_event_id=) recovers every channel.',
        servers: [{ $ref: '#/servers/http' }],
        messages: channelMessages(serverMessages),
        bindings: {
          http: {
            method: 'GET',
            // The schema that validates /sse's query (http-contract.ts; also in the OpenAPI document).
            query: jsonSchema(SseQuery),
            bindingVersion: '0.3.0',
          },
        },
      },
    },
    operations: {
      receiveClientFrames: {
        action: 'receive',
        title: 'Frames a client sends',
        channel: { $ref: '#/channels/webSocket' },
        messages: Object.keys(ClientFrames).map((n) => ({ $ref: `#/channels/webSocket/messages/${n}` })),
      },
      sendWebSocketFrames: {
        action: 'send',
        title: 'Frames the gateway sends on a WebSocket',
        channel: { $ref: '#/channels/webSocket' },
        messages: serverMessages.map((n) => ({ $ref: `#/channels/webSocket/messages/${n}` })),
      },
      sendServerSentEvents: {
        action: 'send',
        title: 'Events the gateway sends on an SSE stream',
        channel: { $ref: '#/channels/serverSentEvents' },
        messages: serverMessages.map((n) => ({ $ref: `#/channels/serverSentEvents/messages/${n}` })),
      },
    },
    components: {
      securitySchemes: {
        accessToken: {
          type: 'httpApiKey',
          name: 'access_token',
          in: 'query',
          description: 'The access token (JWT, `sub` = user id); over WebSocket also as Authorization: Bearer.',
        },
      },
      messages,
      schemas,
    },
  };
  return `# Generated by \`pnpm asyncapi\` from services/fanout-gateway. Do not edit.\n${stringify(doc, { aliasDuplicateObjects: false, lineWidth: 0 })}`;
}
