export { loadConfig, ConfigError } from './load.js';
export { CommonEnv, defaultDatabaseUrl, parseBrokers } from './common.js';
