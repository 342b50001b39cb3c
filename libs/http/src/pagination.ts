import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';
import { HttpErrors } from './error-kinds.js';

/** Items per page when a request names no `limit`. */
export const DEFAULT_PAGE_LIMIT = 20;

/**
 * Cursor pagination, newest first. Ids are UUIDv7 (time-ordered), so "after the cursor" is
 * `id < cursor` in one index range scan whatever is inserted meanwhile: no skipped or repeated
 * items, unlike offsets. The cursor is opaque to clients and bound to its list. Both are optional.
 */
export const PageQuery = Type.Object(
  {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: DEFAULT_PAGE_LIMIT })),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  },
  { additionalProperties: false },
);

export function pageOf<T extends TSchema>(item: T) {
  return Type.Object({
    items: Type.Array(item),
    /** Pass as `cursor` for the next page; null on the last page. */
    nextCursor: Type.Union([Type.String(), Type.Null()]),
  });
}

/** Bytes of a cursor's check: a hash prefix over its list and its position. */
const CHECK_BYTES = 6;

/**
 * The request a page answers: `query` (`limit`, `cursor`), and the route, path parameters and
 * caller (`user.sub`, for `/me/...` lists) that name the list, which the page's cursors are bound
 * to (a fastify request is one).
 */
export interface PageRequest {
  readonly query: { limit?: number | undefined; cursor?: string | undefined };
  readonly params: unknown;
  readonly routeOptions: { readonly url?: string | undefined };
  readonly user?: unknown;
}

/** What names `request`'s list: its route, path parameters and caller. */
function listOf(request: PageRequest): string {
  const caller = (request.user as { sub?: unknown } | undefined)?.sub;
  return `${request.routeOptions.url ?? ''}\n${JSON.stringify(request.params ?? {})}\n${JSON.stringify(caller ?? null)}`;
}

/** The check of a cursor at `position` (the UUID's 16 bytes) in `list`: the first bytes of SHA-256 over both. */
function checkOf(list: string, position: Buffer): Buffer {
  return createHash('sha256').update(list).update('\n').update(position).digest().subarray(0, CHECK_BYTES);
}

/** A cursor: base64url of its check and the last item's UUID (16 bytes), 30 characters. */
function encodeCursor(list: string, id: string): string {
  const position = Buffer.from(id.replace(/-/g, ''), 'hex');
  return Buffer.concat([checkOf(list, position), position]).toString('base64url');
}

/**
 * The id the next page starts after, or undefined for the first page. Errors: 400 CURSOR_INVALID
 * (`field: query.cursor`) for a cursor this API did not issue for this list, or one altered (the
 * check covers the list and the position; it is no signature: a client that knows this code can
 * make a cursor for any position of a list it may read, which it can reach by paging anyway).
 */
function decodeCursor(cursor: string | undefined, list: string): string | undefined {
  if (cursor === undefined) return undefined;
  const bytes = Buffer.from(cursor, 'base64url');
  const position = bytes.subarray(CHECK_BYTES);
  if (
    bytes.length !== CHECK_BYTES + 16 ||
    bytes.toString('base64url') !== cursor ||
    !checkOf(list, position).equals(bytes.subarray(0, CHECK_BYTES))
  ) {
    throw HttpErrors.cursorInvalid.error('cursor is not one this API returned for this list', {
      field: 'query.cursor',
    });
  }
  const hex = position.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** What a list query adds to its filter: the cursor bound, and how many rows to take. */
export interface PageWindow {
  readonly idBefore: { id?: { lt: string } };
  /** `limit + 1`: the extra row says whether there is a next page. */
  readonly take: number;
}

/**
 * Fetches one page of `request`'s list, newest first: `find` must order by id (a UUID) descending
 * and apply the window. The next page's cursor is bound to the list (route, path parameters, caller):
 * on another list it is refused with 400 CURSOR_INVALID, never read as a position there.
 */
export async function fetchPage<R extends { id: string }, V>(
  request: PageRequest,
  find: (window: PageWindow) => Promise<readonly R[]>,
  view: (row: R) => V,
): Promise<{ items: V[]; nextCursor: string | null }> {
  const limit = request.query.limit ?? DEFAULT_PAGE_LIMIT;
  const list = listOf(request);
  const after = decodeCursor(request.query.cursor, list);
  const rows = await find({ idBefore: after === undefined ? {} : { id: { lt: after } }, take: limit + 1 });
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items: items.map(view), nextCursor: rows.length > limit && last ? encodeCursor(list, last.id) : null };
}
