export type { Directory } from './directory.js';
export { LeasedDirectory } from './directory.js';
export { MemoryLeasedSets, RedisLeasedSets } from './leased-set.js';
export type { LeasedSets } from './leased-set.js';
export type { AppendFence, History, HistoryAppend, HistoryEntry, Recovery, StreamPosition } from './history.js';
export {
  EPOCH_PATTERN,
  FencedAppendError,
  HISTORY_DEDUPE_WINDOW,
  OFFSET_PATTERN,
  compareOffsets,
  isLaterEpoch,
  newEpoch,
} from './history.js';
export { RedisHistory } from './redis-history.js';
export type { RedisHistoryOptions } from './redis-history.js';
export { MemoryHistory } from './memory-history.js';
export type { Departures } from './departures.js';
export { MemoryDepartures, RedisDepartures } from './departures.js';
export type { DeadNode, NodeRoster, ServedConnection } from './roster.js';
export { MemoryNodeRoster, RedisNodeRoster } from './roster.js';
export type { RouteLog, RoutedBatch } from './route-log.js';
export { RedisRouteLog, SequentialRouteLog } from './route-log.js';
export type { ConnectLog, ConnectionClosing, ConnectionOpening, OpenedConnection } from './connect-log.js';
export { RedisConnectLog, SequentialConnectLog } from './connect-log.js';
export type { FenceTokens } from './fence-tokens.js';
export { MemoryFenceTokens, RedisFenceTokens } from './fence-tokens.js';
