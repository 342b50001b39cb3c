export { buildEnvelope, envelopeSchema } from './envelope.js';
export type { Envelope } from './envelope.js';
export { Catalog, PostCreated, PostCreatedData, Topics } from './catalog.js';
export type { AnyEvent, EventType, TopicName } from './catalog.js';
export { decodeEvent, isEventType, validateEvent } from './validate.js';
export { channelsFor, partitionKeyFor, topicFor } from './routing.js';
export { cloudEventHeaders, toOutboxMessage } from './outbox-message.js';
export type { OutboxMessage } from './outbox-message.js';
