import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RawSql, Transaction } from '@ripple/db';
import { HttpErrors } from './error-kinds.js';

/**
 * `Idempotency-Key` for POST routes. The key row is inserted first in the same transaction as the
 * state change and its outbox event, so a retry can never produce a second change or event:
 * a concurrent duplicate blocks on the key's primary key until the first commits, then replays
 * its answer. Keys are scoped per user; errors are not stored, so a retry after a 4xx/5xx runs again.
 * The table (every service's migrations create it):
 *   idempotency_keys(user_id, key, request_hash, status_code, response, created_at), PK (user_id, key)
 */
export interface Mutations<Tx extends RawSql> {
  /**
   * Runs `work` in one transaction and answers `status` with its result. With an
   * Idempotency-Key, a retry with the same request gets the stored answer
   * (`Idempotent-Replayed: true`); the same key with a different request gets 422.
   */
  run<B>(
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    work: (tx: Tx) => Promise<B>,
  ): Promise<FastifyReply>;
  /**
   * `run` for work that is a single SQL statement, atomic by itself (a data-modifying CTE that
   * writes the state and its outbox row). Without an Idempotency-Key it runs on a pooled
   * connection with no interactive transaction: one round trip instead of BEGIN, the statements
   * and COMMIT. With a key it runs inside the key's transaction, exactly as `run` does.
   */
  single<B>(
    request: FastifyRequest,
    reply: FastifyReply,
    status: number,
    work: (sql: RawSql) => Promise<B>,
  ): Promise<FastifyReply>;
}

class KeyTaken extends Error {}

/** JSON with sorted keys, so a retry that reorders fields is still the same request. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

function requestHash(request: FastifyRequest): string {
  return createHash('sha256')
    .update(`${request.method} ${request.url}\n${canonical(request.body ?? null)}`)
    .digest('hex');
}

/**
 * The request's Idempotency-Key. The route's schema validated it (`routeSchema` with
 * `idempotent: true` declares the header), so a route that forgot to declare it fails loudly
 * here instead of taking keys its OpenAPI document does not mention.
 */
function keyOf(request: FastifyRequest): string | undefined {
  const headers = request.routeOptions.schema?.headers as { properties?: Record<string, unknown> } | undefined;
  if (headers?.properties?.['idempotency-key'] === undefined) {
    throw new Error(`${request.method} ${request.routeOptions.url ?? ''} does not declare Idempotency-Key`);
  }
  const key = request.headers['idempotency-key'];
  return typeof key === 'string' ? key : undefined;
}

export function mutations<Tx extends RawSql>(deps: {
  transaction: Transaction<Tx>;
  /** Statements outside a transaction, for `single`. */
  sql: RawSql;
  /** Called after every commit (wakes the outbox relay). */
  afterCommit: () => void;
}): Mutations<Tx> {
  const runner: Mutations<Tx> = {
    async single<B>(request: FastifyRequest, reply: FastifyReply, status: number, work: (sql: RawSql) => Promise<B>) {
      if (keyOf(request) !== undefined) return runner.run(request, reply, status, work);
      const body = await work(deps.sql);
      deps.afterCommit();
      return reply.status(status).send(body);
    },
    async run<B>(request: FastifyRequest, reply: FastifyReply, status: number, work: (tx: Tx) => Promise<B>) {
      const key = keyOf(request);
      const answer = (body: B) => {
        deps.afterCommit();
        return reply.status(status).send(body);
      };
      if (key === undefined) return answer(await deps.transaction(work));
      const userId = request.user.sub;
      const hash = requestHash(request);
      let body: B;
      try {
        body = await deps.transaction(async (tx) => {
          const inserted = await tx.$executeRaw`
            INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES (${userId}, ${key}, ${hash})
            ON CONFLICT DO NOTHING`;
          // Taken: by a committed request (replayed below) or one in flight, which this insert
          // waited for; if that one rolled back, the insert went through instead.
          if (inserted === 0) throw new KeyTaken();
          const result = await work(tx);
          await tx.$executeRaw`
            UPDATE idempotency_keys SET status_code = ${status}, response = ${JSON.stringify(result)}::jsonb
            WHERE user_id = ${userId} AND key = ${key}`;
          return result;
        });
      } catch (err) {
        if (!(err instanceof KeyTaken)) throw err;
        return replay();
      }
      return answer(body);

      async function replay() {
        const [stored] = await deps.transaction(
          (tx) =>
            tx.$queryRaw<{ request_hash: string; status_code: number; response: B }[]>`
          SELECT request_hash, status_code, response FROM idempotency_keys WHERE user_id = ${userId} AND key = ${key}`,
        );
        if (!stored || stored.request_hash !== hash) {
          throw HttpErrors.idempotencyKeyReused.error('this Idempotency-Key was used for a different request', {
            field: 'headers.idempotency-key',
          });
        }
        return reply.header('idempotent-replayed', 'true').status(stored.status_code).send(stored.response);
      }
    },
  };
  return runner;
}

/** Deletes keys older than `ttlMs`; a retry after that runs again. Returns the number deleted. */
export async function deleteExpiredIdempotencyKeys(db: RawSql, ttlMs: number): Promise<number> {
  return db.$executeRaw`DELETE FROM idempotency_keys WHERE created_at < now() - ${ttlMs} * interval '1 millisecond'`;
}
