export { loadConfig, ConfigError, describeValue } from './load.js';
export { CommonEnv, ORIGINS, defaultDatabaseUrl, parseBrokers } from './common.js';
