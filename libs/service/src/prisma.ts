import { PrismaPg } from '@prisma/adapter-pg';
import type { RawSql, Transaction } from '@ripple/db';

/** A factory for a service's generated Prisma client on the engine-free pg driver adapter. */
export function prismaClientFactory<C>(Client: new (options: { adapter: PrismaPg }) => C): (url: string) => C {
  return (url) => new Client({ adapter: new PrismaPg({ connectionString: url }) });
}

/** A Prisma client's interactive transactions as a `Transaction`. */
export function prismaTransaction<Tx extends RawSql>(db: {
  $transaction<R>(fn: (tx: Tx) => Promise<R>): Promise<R>;
}): Transaction<Tx> {
  return (fn) => db.$transaction(fn);
}
