export { installErrorHandling } from './errors.js';
export type { ErrorBody } from './errors.js';
export { requireUser, userOf } from './auth.js';
export { installOperationalRoutes, listeningPort, serviceShell } from './health.js';
export type { ReadinessCheck } from './health.js';
export { runProcess } from './process.js';
export type { RunningProcess } from './process.js';
