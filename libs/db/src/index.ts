export { dropDatabase, ensureDatabase, postgresReadiness } from './database.js';
export { applyMigrations } from './migrate.js';
export type { MigrationResult } from './migrate.js';
