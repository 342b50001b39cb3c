export { createOutboxRelay } from './relay.js';
export type { OutboxRecord, OutboxRelay, OutboxRelayOptions, OutboxStore, SetAside } from './relay.js';
export { PgOutboxStore } from './pg-store.js';
export type { PgOutboxStoreOptions, VacuumResult } from './pg-store.js';
export { OUTBOX_CHANNEL, OUTBOX_NOTIFY_INTERVAL_MS, listenForOutbox } from './listener.js';
export type { OutboxListener } from './listener.js';
export { startOutboxService } from './service.js';
export type { OutboxService, OutboxServiceOptions } from './service.js';
export { appendToOutbox, outboxColumns } from './append.js';
