import { Catalog } from './catalog.js';
import type { AnyEvent } from './catalog.js';

interface Routable {
  readonly topic: string;
  readonly key: (data: never) => string;
  readonly channels: (data: never) => string[];
}

function entryOf(event: AnyEvent): {
  topic: string;
  key: (data: unknown) => string;
  channels: (data: unknown) => string[];
} {
  // The catalog is indexed by the same type the event carries; TypeScript cannot correlate the union.
  return Catalog[event.type] as Routable as never;
}

/** The channels an event is delivered to: the single event->channels table (DESIGN.md §4). */
export function channelsFor(event: AnyEvent): string[] {
  return entryOf(event).channels(event.data);
}

/** The Kafka partition key of an event: its aggregate id. */
export function partitionKeyFor(event: AnyEvent): string {
  return entryOf(event).key(event.data);
}

/** The logical topic of an event. */
export function topicFor(event: AnyEvent): string {
  return entryOf(event).topic;
}
