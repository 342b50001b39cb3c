import { test } from 'node:test';
import assert from 'node:assert/strict';
import { uuidv7 } from './ids.js';

test('uuidv7 should be a version 7, variant 1 uuid carrying the millisecond', () => {
  const id = uuidv7(Date.UTC(2026, 10, 22));
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(parseInt(id.replace(/-/g, '').slice(0, 12), 16), Date.UTC(2026, 10, 22));
});

test('uuidv7 should increase strictly within one millisecond and across a clock step back', () => {
  const t = Date.UTC(2030, 0, 1);
  const ids = [...Array.from({ length: 5000 }, () => uuidv7(t)), uuidv7(t - 10), uuidv7(t + 1000)];
  for (let i = 1; i < ids.length; i++) assert.ok((ids[i - 1] as string) < (ids[i] as string), `${i}`);
});
