import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { RawSql } from './raw.js';

/** A statement's text with `$n` placeholders, and its prepared statement's name. */
interface Prepared {
  readonly text: string;
  readonly name: string;
}

/** A statement's name: its first line, a comment such as `-- posts.insert`. */
const LEADING_NAME = /^\s*--\s*([A-Za-z_][\w.-]*)\s*\n/;
/** PostgreSQL keeps this much of a prepared statement's name (NAMEDATALEN - 1): longer ones meet. */
const MAX_NAME_BYTES = 63;

/**
 * Tagged raw SQL (`RawSql`) straight on a pg pool, without Prisma's client runtime, for the
 * hottest statements (the group commit of POST /posts and POST /rooms/:id/messages): at 1,000
 * writes/s Prisma's per-statement work was ~10% of post-service's CPU (V8 profile), for a
 * statement that needs none of it. Values are bound parameters as with Prisma (`${value}` becomes
 * `$n`); each call site's text is a named prepared statement, parsed and planned once per
 * connection. Results are pg's: `$executeRaw` resolves to the rows affected, `$queryRaw` to the
 * rows, typed by pg (int8 and numeric as strings, where Prisma gives BigInt and Decimal). Errors
 * are pg's (a SQLSTATE `code`, or a socket error); `isDatabaseUnavailable` reads both.
 *
 * Name a statement with a first line `-- <table>.<operation>` (`-- posts.insert`): it is prepared
 * under that name, which pg's instrumentation makes its span's name (`pg.query:posts.insert <db>`)
 * and `pg_prepared_statements` shows. A statement without one is prepared as `r` and a hash of
 * its text, which tells a reader nothing. A name given to two different texts rejects the second
 * (a prepared statement's name means one text per connection), and so does a name longer than 63
 * bytes (PostgreSQL cuts it to 63, where two such names would meet).
 */
export function pgSql(pool: pg.Pool): RawSql {
  // Keyed by the template's strings array: one object per call site, for the process's lifetime.
  const prepared = new WeakMap<TemplateStringsArray, Prepared>();
  /** The text each given name was first used for. */
  const named = new Map<string, string>();
  const statement = (strings: TemplateStringsArray, values: unknown[]) => {
    let p = prepared.get(strings);
    if (!p) {
      const text = strings.reduce((sql, part, i) => `${sql}$${i}${part}`);
      const name = LEADING_NAME.exec(text)?.[1];
      if (name !== undefined) {
        if ((named.get(name) ?? text) !== text)
          throw new Error(`pgSql: the statement name "${name}" is given to two different statements`);
        if (Buffer.byteLength(name) > MAX_NAME_BYTES)
          throw new Error(`pgSql: the statement name "${name}" is longer than ${MAX_NAME_BYTES} bytes`);
        named.set(name, text);
      }
      p = { text, name: name ?? `r${createHash('sha1').update(text).digest('hex').slice(0, 20)}` };
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
