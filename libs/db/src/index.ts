export { dropDatabase, ensureDatabase, postgresReadiness } from './database.js';
export { applyMigrations } from './migrate.js';
export type { MigrationResult } from './migrate.js';
export { uuidv7 } from './ids.js';
export { isDatabaseUnavailable } from './unavailable.js';
export type { RawSql, Transaction } from './raw.js';
export { pgSql } from './pg-sql.js';
