import { Type } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';

/**
 * An RFC 3339 time, at most to the nanosecond with a numeric offset
 * (`2026-01-01T00:00:00.123456789+00:00`, 35 characters): bounded like every string of an event,
 * so that the largest event the catalog accepts fits one Kafka produce request.
 */
export const Time = Type.String({ format: 'date-time', maxLength: 35 });

/** CloudEvents 1.0 attributes shared by every event (DESIGN.md §3). */
export function envelopeSchema<T extends string, D extends TSchema>(type: T, data: D) {
  return Type.Object(
    {
      specversion: Type.Literal('1.0'),
      id: Type.String({ format: 'uuid' }),
      source: Type.String({ minLength: 1, maxLength: 200 }),
      type: Type.Literal(type),
      time: Time,
      subject: Type.String({ minLength: 1, maxLength: 200 }),
      datacontenttype: Type.Literal('application/json'),
      dataschema: Type.String({ minLength: 1, maxLength: 200 }),
      data,
    },
    { additionalProperties: false, $id: type },
  );
}
