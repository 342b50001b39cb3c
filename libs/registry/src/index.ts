export type { NodeRegistry } from './nodes.js';
export { MemoryNodeRegistry } from './memory.js';
export { RedisNodeRegistry } from './redis.js';
