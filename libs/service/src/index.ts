export { domainServiceEnv } from './env.js';
export type { DomainServiceConfig } from './env.js';
export { directPublisher, outboxEmitter, traceOf } from './events.js';
export type { Emit, Publish, TraceContext } from './events.js';
export { createRedis, startDomainService } from './runtime.js';
export type { ApiDeps, DomainServiceSpec } from './runtime.js';
export { prismaClientFactory, prismaTransaction } from './prisma.js';
export type { PoolOptions, TransactionOptions } from './prisma.js';
