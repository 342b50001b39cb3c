import { randomUUID } from 'node:crypto';
import { Catalog } from './catalog.js';
import type { DataOf, EventOf, EventType } from './catalog.js';
import { validateEvent } from './validate.js';

/**
 * Builds a complete, validated event: fresh id, the current time, the catalog's dataschema, and
 * the aggregate id as `subject` unless given. Throws EVENT_INVALID when `data` breaks its schema.
 */
export function createEvent<T extends EventType>(
  type: T,
  input: { source: string; data: DataOf<T>; subject?: string; id?: string; time?: Date },
): EventOf<T> {
  const entry = Catalog[type] as { subject: (data: DataOf<T>) => string; dataschema: string };
  const event = {
    specversion: '1.0',
    id: input.id ?? randomUUID(),
    source: input.source,
    type,
    time: (input.time ?? new Date()).toISOString(),
    subject: input.subject ?? entry.subject(input.data),
    datacontenttype: 'application/json',
    dataschema: entry.dataschema,
    data: input.data,
  };
  validateEvent(event);
  return event as unknown as EventOf<T>;
}
