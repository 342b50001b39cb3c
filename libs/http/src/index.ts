export { installErrorHandling, writeErrorAnswer } from './errors.js';
export type { ErrorBody } from './errors.js';
export { installAuth, requireUser, userOf } from './auth.js';
export { createApiApp } from './api.js';
export { allowedOriginsOf, installCors, originAllowed } from './cors.js';
export type { AllowedOrigins } from './cors.js';
export {
  BEARER_SCHEME,
  IdempotencyKeyHeader,
  StoredText,
  addErrorResponses,
  declareSharedErrors,
  errorBodySchema,
  routeSchema,
} from './contract.js';
export type { RouteContract } from './contract.js';
export { GlobalErrors, HttpErrors } from './error-kinds.js';
export type { ApiOptions } from './api.js';
export { deleteExpiredIdempotencyKeys, mutations } from './idempotency.js';
export type { Mutations } from './idempotency.js';
export { DEFAULT_PAGE_LIMIT, PageQuery, fetchPage, pageOf } from './pagination.js';
export type { PageWindow } from './pagination.js';
export { installOperationalRoutes, listeningPort, serviceShell } from './health.js';
export type { ReadinessCheck, ServiceShellOptions } from './health.js';
export { runProcess } from './process.js';
export type { RunningProcess } from './process.js';
export { OverloadError, installOverloadProtection } from './overload.js';
export type { OverloadOptions, ShedReason } from './overload.js';
export { GLOBAL_RESPONSES, OperationalSchemas, globalResponses, registerOpenApi } from './openapi.js';
export type { OpenApiInfo } from './openapi.js';
