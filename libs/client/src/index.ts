export { createClient, RippleClientError } from './client.js';
export type {
  ClientOptions,
  ConnectionState,
  EventContext,
  RippleClient,
  Subscription,
  SubscriptionHandlers,
} from './client.js';
export type { BackoffOptions } from './backoff.js';
export type { StreamPosition } from './frames.js';
export type { WebSocketConstructor } from './transport.js';
export type { AnyEvent, DataOf, EventOf, EventType } from '@ripple/events';
