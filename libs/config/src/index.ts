export { loadConfig, ConfigError } from './load.js';
export { CommonEnv, ORIGINS, defaultDatabaseUrl, parseBrokers } from './common.js';
