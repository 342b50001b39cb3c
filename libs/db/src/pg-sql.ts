import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { RawSql } from './raw.js';

/** A statement's text with `$n` placeholders, and its prepared statement's name. */
interface Prepared {
  readonly text: string;
  readonly name: string;
}

/**
 * Tagged raw SQL (`RawSql`) straight on a pg pool, without Prisma's client runtime, for the
 * hottest statements (the group commit of POST /posts and POST /rooms/:id/messages): at 1,000
 * writes/s Prisma's per-statement work was ~10% of post-service's CPU (V8 profile), for a
 * statement that needs none of it. Values are bound parameters as with Prisma (`${value}` becomes
 * `$n`); each call site's text is a named prepared statement, parsed and planned once per
 * connection. Results are pg's: `$executeRaw` resolves to the rows affected, `$queryRaw` to the
 * rows, typed by pg (int8 and numeric as strings, where Prisma gives BigInt and Decimal). Errors
 * are pg's (a SQLSTATE `code`, or a socket error); `isDatabaseUnavailable` reads both.
 */
export function pgSql(pool: pg.Pool): RawSql {
  // Keyed by the template's strings array: one object per call site, for the process's lifetime.
  const prepared = new WeakMap<TemplateStringsArray, Prepared>();
  const statement = (strings: TemplateStringsArray, values: unknown[]) => {
    let p = prepared.get(strings);
    if (!p) {
      const text = strings.reduce((sql, part, i) => `${sql}$${i}${part}`);
      p = { text, name: `r${createHash('sha1').update(text).digest('hex').slice(0, 20)}` };
      prepared.set(strings, p);
    }
    return { name: p.name, text: p.text, values };
  };
  return {
    async $executeRaw(strings, ...values) {
      return (await pool.query(statement(strings, values))).rowCount ?? 0;
    },
    async $queryRaw<T>(strings: TemplateStringsArray, ...values: unknown[]) {
      return (await pool.query(statement(strings, values))).rows as T;
    },
  };
}
