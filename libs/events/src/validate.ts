import { TypeCompiler } from '@sinclair/typebox/compiler';
import type { TypeCheck } from '@sinclair/typebox/compiler';
import type { TSchema } from '@sinclair/typebox';
import { FormatRegistry } from '@sinclair/typebox';
import { RippleError } from '@ripple/errors';
import { Catalog } from './catalog.js';
import type { AnyEvent, EventType } from './catalog.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has('uuid')) FormatRegistry.Set('uuid', (v) => UUID.test(v));
if (!FormatRegistry.Has('date-time'))
  FormatRegistry.Set('date-time', (v) => DATE_TIME.test(v) && !Number.isNaN(Date.parse(v)));

const compiled = new Map<string, TypeCheck<TSchema>>(
  Object.entries(Catalog).map(([type, entry]) => [type, TypeCompiler.Compile<TSchema>(entry.schema)]),
);

export function isEventType(type: unknown): type is EventType {
  return typeof type === 'string' && Object.hasOwn(Catalog, type);
}

/**
 * Checks that `value` is a known event that satisfies its schema; returns it typed.
 * Throws RippleError EVENT_UNKNOWN_TYPE or EVENT_INVALID (not retriable: a dead letter).
 */
export function validateEvent(value: unknown): AnyEvent {
  const type = (value as { type?: unknown } | null)?.type;
  if (!isEventType(type)) {
    throw new RippleError('EVENT_UNKNOWN_TYPE', `unknown event type ${JSON.stringify(type ?? null)}`, { status: 400 });
  }
  const check = compiled.get(type);
  if (check === undefined || !check.Check(value)) {
    const first = check?.Errors(value).First();
    const where = first ? `${first.path || '/'}: ${first.message}` : 'schema mismatch';
    throw new RippleError('EVENT_INVALID', `${type} event is invalid at ${where}`, { status: 400 });
  }
  return value as AnyEvent;
}

/** Parses a Kafka message value and validates it. */
export function decodeEvent(raw: Buffer | string | null): AnyEvent {
  if (raw === null) throw new RippleError('EVENT_INVALID', 'message has no value', { status: 400 });
  let value: unknown;
  try {
    value = JSON.parse(typeof raw === 'string' ? raw : raw.toString('utf8'));
  } catch (err) {
    throw new RippleError('EVENT_INVALID', 'message value is not JSON', { status: 400, cause: err });
  }
  return validateEvent(value);
}
