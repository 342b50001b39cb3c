import { PrismaPg } from '@prisma/adapter-pg';
import type { RawSql, Transaction } from '@ripple/db';

/**
 * A factory for a service's generated Prisma client on the engine-free pg driver adapter.
 * `onConnectionError` receives the `error` events of the adapter's pg pool (idle clients) and of
 * its checked-out connections; without it they are still handled (by the adapter), but silently.
 */
export function prismaClientFactory<C>(
  Client: new (options: { adapter: PrismaPg }) => C,
): (url: string, onConnectionError?: (err: Error) => void) => C {
  return (url, onConnectionError) =>
    new Client({
      adapter: new PrismaPg(
        { connectionString: url },
        onConnectionError ? { onPoolError: onConnectionError, onConnectionError } : undefined,
      ),
    });
}

/** A Prisma client's interactive transactions as a `Transaction`. */
export function prismaTransaction<Tx extends RawSql>(db: {
  $transaction<R>(fn: (tx: Tx) => Promise<R>): Promise<R>;
}): Transaction<Tx> {
  return (fn) => db.$transaction(fn);
}
