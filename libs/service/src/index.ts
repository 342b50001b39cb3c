export { domainServiceEnv } from './env.js';
export type { DomainServiceConfig } from './env.js';
export { directPublisher, outboxEmitter, outboxMessages, traceOf } from './events.js';
export type { Emit, OutboxMessages, Publish, TraceContext } from './events.js';
export { createRedis, startDomainService } from './runtime.js';
export type { ApiDeps, DomainServiceSpec } from './runtime.js';
export { prismaClientFactory, prismaStatements, prismaTransaction, transientDbError } from './prisma.js';
export type { PoolOptions, TransactionOptions } from './prisma.js';
