import { Type } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';

/** CloudEvents 1.0 attributes shared by every event (DESIGN.md §3). */
export function envelopeSchema<T extends string, D extends TSchema>(type: T, data: D) {
  return Type.Object(
    {
      specversion: Type.Literal('1.0'),
      id: Type.String({ format: 'uuid' }),
      source: Type.String({ minLength: 1, maxLength: 200 }),
      type: Type.Literal(type),
      time: Type.String({ format: 'date-time' }),
      subject: Type.String({ minLength: 1, maxLength: 200 }),
      datacontenttype: Type.Literal('application/json'),
      dataschema: Type.String({ minLength: 1, maxLength: 200 }),
      data,
    },
    { additionalProperties: false, $id: type },
  );
}
