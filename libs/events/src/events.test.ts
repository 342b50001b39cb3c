import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RippleError } from '@ripple/errors';
import { Catalog, buildEnvelope, channelsFor, decodeEvent, partitionKeyFor, topicFor, validateEvent } from './index.js';

function postCreated(data: Record<string, unknown> = {}) {
  return buildEnvelope({
    type: 'post.created',
    source: 'post-service',
    subject: 'p1',
    dataschema: Catalog['post.created'].dataschema,
    data: { postId: 'p1', authorId: 'u42', body: 'hello', createdAt: new Date().toISOString(), ...data },
  });
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'valid';
  } catch (err) {
    return err instanceof RippleError ? err.code : 'unexpected';
  }
}

test('a well-formed post.created event should validate', () => {
  const event = postCreated();
  assert.equal(validateEvent(event), event);
  assert.match(event.id, /^[0-9a-f-]{36}$/);
});

test('post.created should route to the creator feed and to the author', () => {
  const event = validateEvent(postCreated());
  assert.deepEqual(channelsFor(event), ['creator:u42', 'user:u42']);
  assert.equal(partitionKeyFor(event), 'p1');
  assert.equal(topicFor(event), 'post.events.v1');
});

test('post.created should reject bad payloads', () => {
  assert.equal(
    codeOf(() => validateEvent(postCreated({ body: '' }))),
    'EVENT_INVALID',
  );
  assert.equal(
    codeOf(() => validateEvent(postCreated({ authorId: 'has space' }))),
    'EVENT_INVALID',
  );
  assert.equal(
    codeOf(() => validateEvent(postCreated({ extra: 1 }))),
    'EVENT_INVALID',
  );
  assert.equal(
    codeOf(() => validateEvent(postCreated({ createdAt: 'yesterday' }))),
    'EVENT_INVALID',
  );
  assert.equal(
    codeOf(() => validateEvent({ ...postCreated(), id: 'not-a-uuid' })),
    'EVENT_INVALID',
  );
  assert.equal(
    codeOf(() => validateEvent({ ...postCreated(), specversion: '0.3' })),
    'EVENT_INVALID',
  );
});

test('decodeEvent should name unknown types and non-JSON values', () => {
  assert.equal(
    codeOf(() => decodeEvent(Buffer.from('{"type":"post.exploded"}'))),
    'EVENT_UNKNOWN_TYPE',
  );
  assert.equal(
    codeOf(() => decodeEvent(Buffer.from('{nope'))),
    'EVENT_INVALID',
  );
  assert.equal(
    codeOf(() => decodeEvent(null)),
    'EVENT_INVALID',
  );
  assert.equal(decodeEvent(JSON.stringify(postCreated())).type, 'post.created');
});
