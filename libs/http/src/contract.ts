import { Type } from '@sinclair/typebox';
import type { TObject, TSchema } from '@sinclair/typebox';
import type { ErrorKind } from '@ripple/errors';
import { GlobalErrors, HttpErrors } from './error-kinds.js';

/** Where `routeSchema` declares the bearer requirement; `createApiApp` declares the scheme. */
export const BEARER_SCHEME = 'bearerAuth';

/** `Idempotency-Key`: 1-255 printable ASCII characters, scoped per user (see `mutations`). */
export const IdempotencyKeyHeader = Type.String({
  minLength: 1,
  maxLength: 255,
  pattern: '^[\\x21-\\x7e]+$',
  description:
    'Retries with the same key and request get the stored answer (Idempotent-Replayed: true) and change nothing twice; the same key with another request is 422 IDEMPOTENCY_KEY_REUSED.',
});

/**
 * The shared error body (`ErrorBody` in errors.ts), for one status: `code` is one of `codes`.
 * Every 4xx/5xx answer of every route has this shape.
 */
export function errorBodySchema(codes: readonly string[], description: string): TSchema {
  return Type.Object(
    {
      code: Type.String({ enum: [...codes], description: 'Stable, machine-readable error code.' }),
      message: Type.String({ description: 'Human-readable explanation; may change between versions.' }),
      field: Type.Optional(
        Type.String({ description: 'For input errors: the offending field as a path (`body.body`, `query.limit`).' }),
      ),
    },
    { description, additionalProperties: false },
  );
}

/** What one route takes and answers; `routeSchema` turns it into the fastify schema. */
export interface RouteContract {
  readonly tag: string;
  readonly summary: string;
  readonly params?: TObject;
  readonly querystring?: TObject;
  readonly body?: TSchema;
  /** The one success answer: its status and body (`null`: no body, as for 204). */
  readonly success: { readonly status: number; readonly description: string; readonly body: TSchema | null };
  /** The domain errors it may answer with, besides those of the shared plumbing. */
  readonly errors?: readonly ErrorKind[];
  /** It honours `Idempotency-Key` (a state-changing route). */
  readonly idempotent?: boolean;
  /** It takes `limit` and `cursor` (a page of a list). */
  readonly paged?: boolean;
}

const RetryAfter = { type: 'integer', description: 'Seconds to wait before retrying.' };

/** What fastify answers when it cannot parse a request body (bad JSON, too large, unknown type). */
const BODY_ERRORS: readonly ErrorKind[] = [
  HttpErrors.bodyInvalidJson,
  HttpErrors.bodyEmpty,
  HttpErrors.bodyLengthMismatch,
  HttpErrors.bodyTooLarge,
  HttpErrors.bodyMediaType,
];

/** Methods whose requests fastify parses a body for (DELETE when it has a content type). */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Adds `kinds` to a fastify `response` schema map: one shared error body per status, whose `code`
 * enum lists every code of that status (merged with an error response already there).
 */
export function addErrorResponses(response: Record<string, unknown>, kinds: readonly ErrorKind[]): void {
  const byStatus = new Map<number, Set<string>>();
  for (const kind of kinds) byStatus.set(kind.status, (byStatus.get(kind.status) ?? new Set()).add(kind.code));
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    const existing = response[status] as { properties?: { code?: { enum?: string[] } } } | undefined;
    const list = [...new Set([...(existing?.properties?.code?.enum ?? []), ...codes])];
    const body = errorBodySchema(list, list.join(', '));
    response[status] = status === 429 || status === 503 ? { ...body, headers: { 'retry-after': RetryAfter } } : body;
  }
}

/**
 * What any request to a route may be answered besides its own answers: `GlobalErrors` but the
 * unknown route's 404 (a URL that is not valid percent-encoding, a malformed or too slow request,
 * headers over Node's limit, a path parameter past the router's).
 */
const ROUTE_GLOBAL_ERRORS: readonly ErrorKind[] = GlobalErrors.filter((kind) => kind !== HttpErrors.notFound);

/**
 * An `onRoute` hook: a documented route (one with a response schema) declares, in its own
 * responses, what any request may get (`ROUTE_GLOBAL_ERRORS`, merged into its 400 and the other
 * statuses, so a validator that reads only the operation accepts them) and, when its method
 * carries a body, fastify's body errors even when it takes no body itself, since fastify parses
 * any body sent to it first (`DELETE /posts/:id` with a malformed JSON body is a 400
 * FST_ERR_CTP_INVALID_JSON_BODY).
 */
export function declareSharedErrors(route: { method: string | string[]; schema?: { response?: unknown } }): void {
  const methods = Array.isArray(route.method) ? route.method : [route.method];
  const response = route.schema?.response as Record<string, unknown> | undefined;
  if (response === undefined) return;
  addErrorResponses(response, ROUTE_GLOBAL_ERRORS);
  if (methods.some((m) => BODY_METHODS.has(m.toUpperCase()))) addErrorResponses(response, BODY_ERRORS);
}

/**
 * The fastify schema of an authenticated route, from its contract: the schemas that validate its
 * input and serialise its answers, and therefore the OpenAPI operation @fastify/swagger serves.
 * Every error it can answer is listed by status with the codes of that status: its own
 * `errors`, plus what the plumbing adds (401 token errors, 400 input errors when it takes input,
 * fastify's body errors when it takes a body, idempotency errors, 429 rate limit, 503 overload
 * and database outage, 500). Statuses are exact: a body-less success is declared as such (`null`).
 */
export function routeSchema(c: RouteContract): Record<string, unknown> {
  const kinds: ErrorKind[] = [HttpErrors.tokenMissing, HttpErrors.tokenInvalid, HttpErrors.tokenExpired];
  const takesInput = c.params !== undefined || c.querystring !== undefined || c.body !== undefined;
  if (takesInput || c.idempotent === true) kinds.push(HttpErrors.validationFailed);
  if (c.paged === true) kinds.push(HttpErrors.cursorInvalid);
  if (c.body !== undefined) kinds.push(...BODY_ERRORS);
  if (c.idempotent === true) kinds.push(HttpErrors.idempotencyKeyReused);
  kinds.push(
    ...(c.errors ?? []),
    HttpErrors.rateLimited,
    HttpErrors.internal,
    HttpErrors.overloaded,
    HttpErrors.databaseUnavailable,
  );

  const replayed = c.idempotent === true && {
    headers: {
      'idempotent-replayed': {
        type: 'string',
        enum: ['true'],
        description: 'Present when this is the stored answer to an earlier request with the same key.',
      },
    },
  };
  const response: Record<string, unknown> = {
    [c.success.status]: {
      ...(c.success.body ?? { type: 'null' }),
      description: c.success.description,
      ...replayed,
    },
  };
  addErrorResponses(response, kinds);
  return {
    tags: [c.tag],
    summary: c.summary,
    security: [{ [BEARER_SCHEME]: [] }],
    ...(c.params && { params: c.params }),
    ...(c.querystring && { querystring: c.querystring }),
    ...(c.body && { body: c.body }),
    ...(c.idempotent === true && {
      headers: Type.Object({ 'idempotency-key': Type.Optional(IdempotencyKeyHeader) }),
    }),
    response,
  };
}
