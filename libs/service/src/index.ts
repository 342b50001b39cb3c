export { domainServiceEnv, jwtOptionsFrom } from './env.js';
export type { DomainServiceConfig } from './env.js';
export { outboxEmitter, traceOf } from './events.js';
export type { Emit, TraceContext } from './events.js';
export { createRedis, startDomainService } from './runtime.js';
export type { ApiDeps, DomainServiceSpec } from './runtime.js';
