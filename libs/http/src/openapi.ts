import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { ErrorKind } from '@ripple/errors';
import { BEARER_SCHEME, addErrorResponses, errorBodySchema } from './contract.js';
import { GlobalErrors, HttpErrors } from './error-kinds.js';

/** `Retry-After` as an OpenAPI header object (an operation's come from its fastify schema). */
const RetryAfterHeader = { description: 'Seconds to wait before retrying.', schema: { type: 'integer' } };

/** Where a document declares the answers any request may get (`GlobalErrors`). */
export const GLOBAL_RESPONSES = 'x-global-responses';

/** What a served OpenAPI document says about the process. */
export interface OpenApiInfo {
  readonly title: string;
  readonly description: string;
  /** Declare the bearer scheme (`bearerAuth`) that `routeSchema` operations require. */
  readonly bearer?: boolean;
  /** Other security schemes its operations name (`components.securitySchemes`). */
  readonly securitySchemes?: Readonly<Record<string, object>>;
}

/**
 * The answers of `GlobalErrors` as OpenAPI response objects by status (`{"404": {description,
 * content}}`), each with the shared error body and the codes of that status. OpenAPI 3.0 has no
 * place for responses shared by every operation; `x-global-responses` at the document's root
 * holds them, and the contract tests accept them for any request (and only them for a path
 * or method the document does not list).
 */
export function globalResponses(kinds: readonly ErrorKind[] = GlobalErrors): Record<string, unknown> {
  const byStatus = new Map<number, string[]>();
  for (const kind of kinds) byStatus.set(kind.status, [...(byStatus.get(kind.status) ?? []), kind.code]);
  return Object.fromEntries(
    [...byStatus].map(([status, codes]) => {
      const description =
        status === 404
          ? 'No route has this method and path (NOT_FOUND).'
          : `Any request may get this: ${codes.join(', ')}.`;
      const schema = JSON.parse(JSON.stringify(errorBodySchema(codes, codes.join(', ')))) as unknown;
      // Every retriable 503 says when to retry, as the operations' 503s declare (`addErrorResponses`).
      const headers = status === 503 && { headers: { 'retry-after': RetryAfterHeader } };
      return [String(status), { description, ...headers, content: { 'application/json': { schema } } }];
    }),
  );
}

/**
 * Serves the OpenAPI 3 document of the routes added after it (@fastify/swagger, from their
 * fastify schemas) at `/docs/json`, with Swagger UI at `/docs`, and the global responses. Call it
 * before adding the routes it documents (the plugins load in order, before later ones).
 */
export function registerOpenApi(app: FastifyInstance, info: OpenApiInfo): void {
  // `x-` keys at the root are passed through as extensions; the types do not know them.
  const extensions = { [GLOBAL_RESPONSES]: globalResponses() } as unknown as Record<string, never>;
  void app.register(swagger, {
    openapi: {
      ...extensions,
      info: {
        title: info.title,
        description: `${info.description}\n\nBesides the responses each operation lists, any request may be answered with one of \`${GLOBAL_RESPONSES}\` (an unknown route is 404 NOT_FOUND).`,
        version: '1',
      },
      ...((info.bearer === true || info.securitySchemes !== undefined) && {
        components: {
          securitySchemes: {
            ...(info.bearer === true && {
              [BEARER_SCHEME]: {
                type: 'http',
                scheme: 'bearer',
                bearerFormat: 'JWT',
                description: 'An access token (JWT) whose `sub` is the user id.',
              },
            }),
            ...(info.securitySchemes as Record<string, never> | undefined),
          },
        },
      }),
    },
  });
  void app.register(swaggerUi, { routePrefix: '/docs' });
}

const InternalError = errorBodySchema([HttpErrors.internal.code], HttpErrors.internal.code);

/** `GET /readyz`'s answer when ready (200); not ready is a 503 with the shared error body. */
const Readiness = Type.Object(
  {
    status: Type.Literal('ready'),
    checks: Type.Record(Type.String(), Type.Literal('ok'), { description: 'Each dependency checked.' }),
  },
  { additionalProperties: false, description: 'Ready to serve.' },
);

/** 200 ready; 503 NOT_READY (a check failed) or DRAINING, in the shared error body; 500. */
function readyzResponses(): Record<string, unknown> {
  const response: Record<string, unknown> = { 200: Readiness };
  addErrorResponses(response, [HttpErrors.notReady, HttpErrors.draining, HttpErrors.internal]);
  return response;
}

/** The fastify schemas of /healthz, /readyz and /metrics (documented where `installOpenApi` ran first). */
export const OperationalSchemas: Record<'healthz' | 'readyz' | 'metrics', Record<string, unknown>> = {
  healthz: {
    tags: ['operations'],
    summary: 'Liveness: the process answers.',
    response: {
      200: Type.Object({ status: Type.Literal('ok') }, { additionalProperties: false, description: 'Alive.' }),
      500: InternalError,
    },
  },
  readyz: {
    tags: ['operations'],
    summary: 'Readiness: every dependency answers and the process is not draining.',
    response: readyzResponses(),
  },
  metrics: {
    tags: ['operations'],
    summary: 'Prometheus metrics (text exposition format 0.0.4).',
    response: {
      200: {
        description: 'The metrics.',
        content: { 'text/plain': { schema: Type.String() } },
      },
      500: InternalError,
    },
  },
} as const;
