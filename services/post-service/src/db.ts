import { PrismaPg } from '@prisma/adapter-pg';
import type { Transaction } from '@ripple/db';
import { PrismaClient } from './generated/prisma/client.js';
import type { Prisma } from './generated/prisma/client.js';

export type Db = PrismaClient;
export type Tx = Prisma.TransactionClient;

export function createDb(databaseUrl: string): Db {
  return new PrismaClient({ adapter: new PrismaPg({ connectionString: databaseUrl }) });
}

export function transaction(db: Db): Transaction<Tx> {
  return (fn) => db.$transaction(fn);
}
