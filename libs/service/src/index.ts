export { domainServiceEnv } from './env.js';
export type { DomainServiceConfig } from './env.js';
export {
  directPublisher,
  eventsWritten,
  outboxEmitter,
  outboxMessages,
  recordingEvents,
  recordingMutations,
  traceOf,
} from './events.js';
export type { Emit, OutboxMessages, Publish, TraceContext } from './events.js';
export { createRedis, startDomainService } from './runtime.js';
export type { ApiDeps, DomainServiceSpec } from './runtime.js';
export { codedStatements, prismaClientFactory, prismaTransaction, transientDbError } from './prisma.js';
export type { PoolOptions, TransactionOptions } from './prisma.js';
export { statementBatcher } from './batch.js';
export type { BatchOptions, BatchWrite, BatchedWrite, StatementBatcher } from './batch.js';
export { outboxColumns } from '@ripple/outbox';
