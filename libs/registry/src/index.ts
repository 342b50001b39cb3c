export type { Directory } from './directory.js';
export { LeasedDirectory } from './directory.js';
export { MemoryLeasedSets, RedisLeasedSets } from './leased-set.js';
export type { LeasedSets } from './leased-set.js';
export type { History, HistoryEntry, Recovery, StreamPosition } from './history.js';
export { EPOCH_PATTERN, OFFSET_PATTERN, compareOffsets, isLaterEpoch, newEpoch } from './history.js';
export { RedisHistory } from './redis-history.js';
export type { RedisHistoryOptions } from './redis-history.js';
export { MemoryHistory } from './memory-history.js';
