import { Type } from '@sinclair/typebox';
import type { TObject, TSchema, TString } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import type { ErrorKind } from '@ripple/errors';
import { GlobalErrors, HttpErrors } from './error-kinds.js';
import { SHED_REASONS } from './overload.js';

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
 * Free text a service stores (a post, a comment, a message, a room's name): `minLength` to
 * `maxLength` UTF-16 code units with no NUL and no lone surrogate, which PostgreSQL's `text` and
 * `jsonb` cannot hold: the write failed and the route answered 500, where such input is a 400
 * VALIDATION_FAILED. (Ajv tests patterns with the `u` flag: a surrogate pair is one code point
 * outside the excluded range, so emoji pass.)
 */
export function StoredText(length: { readonly minLength: number; readonly maxLength: number }): TString {
  return Type.String({
    ...length,
    pattern: '^[^\\u0000\\ud800-\\udfff]*$',
    description: `${length.minLength} to ${length.maxLength} UTF-16 code units (an emoji is two), no NUL, no lone surrogate.`,
  });
}

/**
 * The shared error body (`ErrorBody` in errors.ts), for one status: `code` is one of `codes`.
 * Every 4xx/5xx answer of every route has this shape; where `codes` has OVERLOADED, with its
 * `reason`.
 */
export function errorBodySchema(codes: readonly string[], description: string): TSchema {
  const shed = codes.includes(HttpErrors.overloaded.code) && {
    reason: Type.Optional(
      Type.String({
        enum: [...SHED_REASONS],
        description: 'For OVERLOADED: why the request was shed (the label of `http_requests_shed_total`).',
      }),
    ),
  };
  return Type.Object(
    {
      code: Type.String({ enum: [...codes], description: 'Stable, machine-readable error code.' }),
      message: Type.String({ description: 'Human-readable explanation; may change between versions.' }),
      field: Type.Optional(
        Type.String({ description: 'For input errors: the offending field as a path (`body.body`, `query.limit`).' }),
      ),
      ...shed,
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
  /**
   * The one success answer: its status and body (`null`: no body, as for 204), and the headers it
   * sets besides those every route's answers may carry (rate limit, `Idempotent-Replayed`).
   */
  readonly success: {
    readonly status: number;
    readonly description: string;
    readonly body: TSchema | null;
    readonly headers?: Readonly<
      Record<string, { readonly type: 'string'; readonly enum?: readonly string[]; readonly description: string }>
    >;
  };
  /** The domain errors it may answer with, besides those of the shared plumbing. */
  readonly errors?: readonly ErrorKind[];
  /** It honours `Idempotency-Key` (a state-changing route). */
  readonly idempotent?: boolean;
  /** It takes `limit` and `cursor` (a page of a list). */
  readonly paged?: boolean;
}

const RetryAfter = { type: 'integer', description: 'Seconds to wait before retrying.' };

/** The query of a route that takes none: any parameter is refused. */
const NoQuery = Type.Object({}, { additionalProperties: false });

/**
 * What @fastify/rate-limit sets on every answer of a limited route once the request got past
 * authentication (success or error alike).
 */
const RATE_LIMIT_HEADERS = {
  'x-ratelimit-limit': { type: 'integer', description: 'Requests allowed per window for this user.' },
  'x-ratelimit-remaining': { type: 'integer', description: 'Requests left in the current window.' },
  'x-ratelimit-reset': { type: 'integer', description: 'Seconds until the current window resets.' },
};

/** What fastify answers when it cannot parse a request body (bad JSON, too large, unknown type). */
const BODY_ERRORS: readonly ErrorKind[] = [
  HttpErrors.bodyInvalidJson,
  HttpErrors.bodyEmpty,
  HttpErrors.bodyLengthMismatch,
  HttpErrors.bodyTooLarge,
  HttpErrors.bodyMediaType,
];

/**
 * Adds `kinds` to a fastify `response` schema map: one shared error body per status, whose `code`
 * enum lists every code of that status (merged with an error response already there, whose
 * headers it keeps).
 */
export function addErrorResponses(response: Record<string, unknown>, kinds: readonly ErrorKind[]): void {
  const byStatus = new Map<number, Set<string>>();
  for (const kind of kinds) byStatus.set(kind.status, (byStatus.get(kind.status) ?? new Set()).add(kind.code));
  for (const [status, codes] of [...byStatus].sort(([a], [b]) => a - b)) {
    const existing = response[status] as
      { properties?: { code?: { enum?: string[] } }; headers?: Record<string, unknown> } | undefined;
    const list = [...new Set([...(existing?.properties?.code?.enum ?? []), ...codes])];
    const retry = status === 429 || status === 503 ? { 'retry-after': RetryAfter } : {};
    const headers = { ...existing?.headers, ...retry };
    response[status] = {
      ...errorBodySchema(list, list.join(', ')),
      ...(Object.keys(headers).length > 0 && { headers }),
    };
  }
}

/**
 * What any request to a route may be answered besides its own answers: `GlobalErrors` but the
 * unknown route's 404 (a URL that is not valid percent-encoding, a malformed or too slow request,
 * headers over Node's limit, a path parameter past the router's).
 */
const ROUTE_GLOBAL_ERRORS: readonly ErrorKind[] = GlobalErrors.filter((kind) => kind !== HttpErrors.notFound);

/** Whether a request carries a body: a non-zero `Content-Length`, or any `Transfer-Encoding`. */
function carriesBody(headers: Record<string, string | string[] | undefined>): boolean {
  const length = headers['content-length'];
  return (length !== undefined && Number(length) !== 0) || headers['transfer-encoding'] !== undefined;
}

/**
 * An `onRequest` hook of a route that takes no body: 400 BODY_NOT_ALLOWED for a request with a
 * body, before fastify parses it. An empty one (`Content-Length: 0`) is no body, whatever its
 * `Content-Type` says: the header is dropped, so fastify's JSON parser does not refuse it as
 * empty JSON (`FST_ERR_CTP_EMPTY_JSON_BODY`, which such a route does not declare).
 */
function refuseBody(request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) {
  if (!carriesBody(request.headers)) {
    delete request.headers['content-type'];
    done();
    return;
  }
  done(
    HttpErrors.bodyNotAllowed.error(`${request.method} ${request.routeOptions.url ?? ''} takes no body`, {
      field: 'body',
    }),
  );
}

/**
 * An `onRoute` hook for every route. A documented route (one with a response schema) without a
 * body schema refuses a request that carries a body (400 BODY_NOT_ALLOWED, before fastify parses it), as unknown fields of a body are refused:
 * a body where none is defined is a client's mistake, not something to ignore. It also declares, in its own responses, what any request may get
 * (`ROUTE_GLOBAL_ERRORS`, merged into its 400 and the other statuses, so a validator that reads
 * only the operation accepts them), and the body errors: fastify's when it takes a body,
 * BODY_NOT_ALLOWED when it takes none.
 */
export function declareSharedErrors(route: RouteOptions): void {
  const takesBody = route.schema?.body !== undefined;
  const response = route.schema?.response as Record<string, unknown> | undefined;
  // A route without a contract (a proxy: the demo's /api/*) passes bodies on as they are.
  if (response === undefined) return;
  if (!takesBody) route.onRequest = [...[route.onRequest ?? []].flat(), refuseBody];
  addErrorResponses(response, ROUTE_GLOBAL_ERRORS);
  addErrorResponses(response, takesBody ? BODY_ERRORS : [HttpErrors.bodyNotAllowed]);
}

/**
 * The fastify schema of an authenticated route, from its contract: the schemas that validate its
 * input and serialise its answers, and therefore the OpenAPI operation @fastify/swagger serves.
 * Every error it can answer is listed by status with the codes of that status: its own
 * `errors`, plus what the plumbing adds (401 token errors, 400 input errors when it takes input,
 * idempotency errors, 429 rate limit, 503 overload
 * and database outage, 500); `declareSharedErrors` adds the body errors and what any request may
 * get. Statuses are exact: a body-less success is declared as such (`null`).
 */
export function routeSchema(c: RouteContract): Record<string, unknown> {
  const kinds: ErrorKind[] = [HttpErrors.tokenMissing, HttpErrors.tokenInvalid, HttpErrors.tokenExpired];
  // Every route validates its query: one that takes none refuses any (400 VALIDATION_FAILED).
  kinds.push(HttpErrors.validationFailed);
  if (c.paged === true) kinds.push(HttpErrors.cursorInvalid);
  if (c.idempotent === true) kinds.push(HttpErrors.idempotencyKeyReused);
  kinds.push(
    ...(c.errors ?? []),
    HttpErrors.rateLimited,
    HttpErrors.internal,
    HttpErrors.overloaded,
    HttpErrors.databaseUnavailable,
  );

  const replayed = c.idempotent === true && {
    'idempotent-replayed': {
      type: 'string',
      enum: ['true'],
      description: 'Present when this is the stored answer to an earlier request with the same key.',
    },
  };
  const response: Record<string, unknown> = {
    [c.success.status]: {
      ...(c.success.body ?? { type: 'null' }),
      description: c.success.description,
      headers: { ...replayed, ...c.success.headers },
    },
  };
  addErrorResponses(response, kinds);
  for (const answer of Object.values(response) as { headers?: Record<string, unknown> }[]) {
    answer.headers = { ...answer.headers, ...RATE_LIMIT_HEADERS };
  }
  return {
    tags: [c.tag],
    summary: c.summary,
    security: [{ [BEARER_SCHEME]: [] }],
    ...(c.params && { params: c.params }),
    querystring: c.querystring ?? NoQuery,
    ...(c.body && { body: c.body }),
    ...(c.idempotent === true && {
      headers: Type.Object({ 'idempotency-key': Type.Optional(IdempotencyKeyHeader) }),
    }),
    response,
  };
}
