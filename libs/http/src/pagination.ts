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

/** Bytes of a cursor that name the list it belongs to (a hash prefix of its route and parameters). */
const LIST_TAG_BYTES = 6;

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

/** The tag naming `request`'s list: the first bytes of SHA-256 over its route, path parameters and caller. */
function listTag(request: PageRequest): Buffer {
  const caller = (request.user as { sub?: unknown } | undefined)?.sub;
  const list = `${request.routeOptions.url ?? ''}\n${JSON.stringify(request.params ?? {})}\n${JSON.stringify(caller ?? null)}`;
  return createHash('sha256').update(list).digest().subarray(0, LIST_TAG_BYTES);
}

/** A cursor: base64url of the list's tag and the last item's UUID (16 bytes), 30 characters. */
function encodeCursor(tag: Buffer, id: string): string {
  return Buffer.concat([tag, Buffer.from(id.replace(/-/g, ''), 'hex')]).toString('base64url');
}

/**
 * The id the next page starts after, or undefined for the first page. Errors: 400 CURSOR_INVALID
 * (`field: query.cursor`) for a cursor this API did not issue, or issued for another list.
 */
function decodeCursor(cursor: string | undefined, tag: Buffer): string | undefined {
  if (cursor === undefined) return undefined;
  const bytes = Buffer.from(cursor, 'base64url');
  if (
    bytes.length !== LIST_TAG_BYTES + 16 ||
    bytes.toString('base64url') !== cursor ||
    !tag.equals(bytes.subarray(0, LIST_TAG_BYTES))
  ) {
    throw HttpErrors.cursorInvalid.error('cursor is not one this API returned for this list', {
      field: 'query.cursor',
    });
  }
  const hex = bytes.subarray(LIST_TAG_BYTES).toString('hex');
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
  const tag = listTag(request);
  const after = decodeCursor(request.query.cursor, tag);
  const rows = await find({ idBefore: after === undefined ? {} : { id: { lt: after } }, take: limit + 1 });
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items: items.map(view), nextCursor: rows.length > limit && last ? encodeCursor(tag, last.id) : null };
}
