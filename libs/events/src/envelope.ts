import { randomUUID } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { TSchema } from '@sinclair/typebox';

/** CloudEvents 1.0 attributes shared by every event (DESIGN.md §3). */
export function envelopeSchema<T extends string, D extends TSchema>(type: T, data: D) {
  return Type.Object(
    {
      specversion: Type.Literal('1.0'),
      id: Type.String({ format: 'uuid' }),
      source: Type.String({ minLength: 1 }),
      type: Type.Literal(type),
      time: Type.String({ format: 'date-time' }),
      subject: Type.String({ minLength: 1 }),
      datacontenttype: Type.Literal('application/json'),
      dataschema: Type.String({ minLength: 1 }),
      data,
    },
    { additionalProperties: false, $id: type },
  );
}

export interface Envelope<T extends string, D> {
  specversion: '1.0';
  id: string;
  source: string;
  type: T;
  time: string;
  subject: string;
  datacontenttype: 'application/json';
  dataschema: string;
  data: D;
}

/** Builds a complete envelope with a fresh id and the current time. */
export function buildEnvelope<T extends string, D>(input: {
  type: T;
  source: string;
  subject: string;
  dataschema: string;
  data: D;
  id?: string;
  time?: Date;
}): Envelope<T, D> {
  return {
    specversion: '1.0',
    id: input.id ?? randomUUID(),
    source: input.source,
    type: input.type,
    time: (input.time ?? new Date()).toISOString(),
    subject: input.subject,
    datacontenttype: 'application/json',
    dataschema: input.dataschema,
    data: input.data,
  };
}
