import { Catalog } from './catalog.js';
import type { AnyEvent } from './catalog.js';

/** The channels an event is delivered to: the single event->channels table (DESIGN.md §4). */
export function channelsFor(event: AnyEvent): string[] {
  return Catalog[event.type].channels(event);
}

/** The Kafka partition key of an event: its aggregate id. */
export function partitionKeyFor(event: AnyEvent): string {
  return Catalog[event.type].key(event);
}

/** The logical topic of an event. */
export function topicFor(event: AnyEvent): string {
  return Catalog[event.type].topic;
}
