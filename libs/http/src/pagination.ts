import { Type } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';
import { HttpErrors } from './error-kinds.js';

/** Items per page when a request names no `limit`. */
export const DEFAULT_PAGE_LIMIT = 20;

/**
 * Cursor pagination, newest first. Ids are UUIDv7 (time-ordered), so "after the cursor" is
 * `id < cursor` in one index range scan whatever is inserted meanwhile: no skipped or repeated
 * items, unlike offsets. The cursor is opaque to clients. Both are optional.
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

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The id the next page starts after, or undefined for the first page; 400 for a cursor we did not issue. */
function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!UUID.test(id)) {
    throw HttpErrors.cursorInvalid.error('cursor is not one this API returned', { field: 'query.cursor' });
  }
  return id;
}

/** What a list query adds to its filter: the cursor bound, and how many rows to take. */
export interface PageWindow {
  readonly idBefore: { id?: { lt: string } };
  /** `limit + 1`: the extra row says whether there is a next page. */
  readonly take: number;
}

/** Fetches one page, newest first: `find` must order by id descending and apply the window. */
export async function fetchPage<R extends { id: string }, V>(
  query: { limit?: number | undefined; cursor?: string | undefined },
  find: (window: PageWindow) => Promise<readonly R[]>,
  view: (row: R) => V,
): Promise<{ items: V[]; nextCursor: string | null }> {
  const limit = query.limit ?? DEFAULT_PAGE_LIMIT;
  const after = decodeCursor(query.cursor);
  const rows = await find({ idBefore: after === undefined ? {} : { id: { lt: after } }, take: limit + 1 });
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items: items.map(view),
    nextCursor: rows.length > limit && last ? Buffer.from(last.id, 'utf8').toString('base64url') : null,
  };
}
