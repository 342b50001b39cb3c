import { prismaClientFactory, prismaTransaction } from '@ripple/service';
import type { TransactionOptions } from '@ripple/service';
import { PrismaClient } from './generated/prisma/client.js';
import type { Prisma } from './generated/prisma/client.js';

export type Db = PrismaClient;
export type Tx = Prisma.TransactionClient;
export const createDb = prismaClientFactory(PrismaClient);
export const transaction = (db: Db, opts?: TransactionOptions) => prismaTransaction<Tx>(db, opts);
