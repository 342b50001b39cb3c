export { envelopeSchema } from './envelope.js';
export { Catalog, Topics } from './catalog.js';
export type { AnyEvent, DataOf, EventOf, EventType, PostCreated, TopicName } from './catalog.js';
export { createEvent } from './create.js';
export { decodeEvent, isEventType, validateEvent } from './validate.js';
export { channelsFor, partitionKeyFor, topicFor } from './routing.js';
export {
  CLOUDEVENTS_CONTENT_TYPE,
  cloudEventHeaders,
  outboxShardOf,
  OUTBOX_SHARDS,
  toOutboxMessage,
} from './outbox-message.js';
export type { OutboxMessage } from './outbox-message.js';
export { renderAsyncApi } from './asyncapi.js';
