/**
 * The part of a Prisma client (or interactive-transaction client) that shared code needs: tagged
 * raw SQL with bound parameters. Every service's generated client satisfies it structurally.
 */
export interface RawSql {
  $executeRaw(query: TemplateStringsArray, ...values: unknown[]): Promise<number>;
  $queryRaw<T = unknown>(query: TemplateStringsArray, ...values: unknown[]): Promise<T>;
}

/** Runs `fn` in one database transaction (`(fn) => prisma.$transaction(fn)`). */
export type Transaction<Tx extends RawSql> = <T>(fn: (tx: Tx) => Promise<T>) => Promise<T>;
