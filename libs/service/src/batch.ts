import DataLoader from 'dataloader';
import type { RawSql } from '@ripple/db';
import { isRippleError } from '@ripple/errors';
import { Histogram, tracer } from '@ripple/telemetry';
import type { Registry } from '@ripple/telemetry';

/**
 * Writes `items` with one SQL statement (atomic by itself: state and outbox rows together) and
 * returns one result per item, in the order of `items`; an `Error` in a slot fails only that
 * item's caller. Throwing fails the whole batch (see `statementBatcher`).
 */
export type BatchWrite<I, R> = (sql: RawSql, items: readonly I[]) => Promise<readonly (R | Error)[]>;

/**
 * Writes one item. On the batcher's own connection pool (`sql` is the `pool` the batcher was made
 * with: a request without an Idempotency-Key) the item joins the next batch; on anything else (a
 * transaction) it is written alone at once, inside that transaction.
 */
export type BatchedWrite<I, R> = (sql: RawSql, item: I) => Promise<R>;

export interface BatchOptions {
  /** Most items in one statement. */
  readonly maxBatch?: number;
  /**
   * Most statements of one batched write in flight at once. While they all are, new items wait
   * and go together in the next statement: batches grow with the load and stay single items
   * when the service is idle (no timer, no added wait beyond one event-loop turn).
   */
  readonly maxInFlight?: number;
}

/** Makes batched writes: `batch(name, write)`. */
export type StatementBatcher = <I, R>(name: string, write: BatchWrite<I, R>) => BatchedWrite<I, R>;

/**
 * Group commit for the hottest single-statement writes (POST /posts, POST /rooms/:id/messages):
 * concurrent requests share one statement, one round trip and one commit instead of one each,
 * which is where the service's CPU per request went (the pg driver's socket write and Prisma's
 * per-statement work; PostgreSQL's commit per transaction). Batching is DataLoader's (no cache,
 * `batchScheduleFn` holding a batch until one of `maxInFlight` slots is free).
 *
 * Guarantees: each statement is one transaction, so every item's state and outbox rows commit
 * together (and with the other items of its batch); items are written in the order they were
 * handed in, so outbox ids keep the order of the requests. A batch that throws a coded error (a
 * transient database failure, which `pool` answers as 503 OVERLOADED / DB_UNAVAILABLE) fails all
 * its items with it; any other failure is retried one item at a time, so one bad item fails only
 * its own request.
 *
 * Metric: `db_write_batch_size{statement}`, items per statement. Span: `<name> (batched)` per
 * item, from joining the queue to its batch's commit, with `db.batch.size`.
 */
export function statementBatcher(pool: RawSql, metrics: Registry, opts: BatchOptions = {}): StatementBatcher {
  const maxBatch = opts.maxBatch ?? 100;
  const maxInFlight = opts.maxInFlight ?? 2;
  const sizes = new Histogram({
    name: 'db_write_batch_size',
    help: 'Items written by one batched statement (group commit), by statement',
    labelNames: ['statement'],
    buckets: [1, 2, 4, 8, 16, 32, 64, 128],
    registers: [metrics],
  });
  return <I, R>(name: string, write: BatchWrite<I, R>): BatchedWrite<I, R> => {
    let inFlight = 0;
    const waiting: (() => void)[] = [];
    const release = () => {
      const next = waiting.shift();
      if (next) next();
      else inFlight--;
    };
    const alone = async (item: I): Promise<R | Error> => {
      try {
        const [result] = await write(pool, [item]);
        return result as R | Error;
      } catch (err) {
        return err instanceof Error ? err : new Error(String(err));
      }
    };
    const loader = new DataLoader<{ item: I; batch: { size: number } }, R>(
      async (entries) => {
        const items = entries.map((e) => e.item);
        for (const e of entries) e.batch.size = items.length;
        sizes.observe({ statement: name }, items.length);
        try {
          return await write(pool, items);
        } catch (err) {
          if (items.length === 1 || isRippleError(err)) throw err;
          return await Promise.all(items.map(alone));
        } finally {
          release();
        }
      },
      {
        cache: false,
        maxBatchSize: maxBatch,
        batchScheduleFn: (dispatch) => {
          if (inFlight < maxInFlight) {
            inFlight++;
            // One turn of the event loop: what arrived with this item joins it.
            setImmediate(dispatch);
          } else {
            waiting.push(dispatch);
          }
        },
      },
    );
    return async (sql, item) => {
      if (sql !== pool) {
        const [result] = await write(sql, [item]);
        if (result instanceof Error) throw result;
        return result as R;
      }
      return tracer().startActiveSpan(`${name} (batched)`, async (span) => {
        const batch = { size: 0 };
        try {
          return await loader.load({ item, batch });
        } finally {
          span.setAttribute('db.batch.size', batch.size);
          span.end();
        }
      });
    };
  };
}
