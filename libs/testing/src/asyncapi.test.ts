import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AsyncApiContract } from './asyncapi.js';

const DOC = `asyncapi: 3.0.0
info: { title: things, version: 1.0.0 }
channels:
  things:
    address: thing.events.v1
    messages:
      thing.made: { $ref: '#/components/messages/thing.made' }
components:
  messages:
    thing.made:
      name: thing.made
      contentType: application/cloudevents+json
      headers:
        type: object
        required: [ce_type, content-type]
        properties: { ce_type: { type: string, const: thing.made }, content-type: { type: string } }
      payload:
        type: object
        required: [id]
        additionalProperties: false
        properties: { id: { type: string, format: uuid } }
`;

async function contractOf(text: string) {
  const dir = await mkdtemp(join(tmpdir(), 'asyncapi-'));
  try {
    await writeFile(join(dir, 'doc.yaml'), text);
    return await AsyncApiContract.load(join(dir, 'doc.yaml'));
  } finally {
    await rm(dir, { recursive: true });
  }
}

const headers = { ce_type: 'thing.made', 'content-type': 'application/cloudevents+json' };
const id = '0b6f4f5e-3f7e-4a4f-9d4e-0a2b3c4d5e6f';

test('an AsyncAPI contract should accept a record of a documented channel and message', async () => {
  const contract = await contractOf(DOC);
  contract.check({ topic: 'test.run1.thing.events.v1', headers, value: JSON.stringify({ id }) });
});

test('an AsyncAPI contract should refuse unknown topics and types, wrong content types, headers and payloads', async () => {
  const contract = await contractOf(DOC);
  const refuses = (record: Parameters<typeof contract.check>[0], message: RegExp) =>
    assert.throws(() => contract.check(record), { name: 'AssertionError', message });
  const value = JSON.stringify({ id });
  refuses({ topic: 'other.events.v1', headers, value }, /no channel/);
  refuses({ topic: 'thing.events.v1', headers: { ...headers, ce_type: 'thing.lost' }, value }, /has no message/);
  refuses(
    { topic: 'thing.events.v1', headers: { ...headers, 'content-type': 'application/json' }, value },
    /content-type/,
  );
  refuses({ topic: 'thing.events.v1', headers, value: JSON.stringify({ id: 'x' }) }, /payload breaks/);
  refuses({ topic: 'thing.events.v1', headers, value: JSON.stringify({ id, more: 1 }) }, /payload breaks/);
  refuses({ topic: 'thing.events.v1', headers, value: '{' }, /not JSON/);
});

test('an AsyncAPI contract should refuse a document the parser finds invalid', async () => {
  await assert.rejects(contractOf('asyncapi: 3.0.0\ninfo: { title: x }\n'), /not a valid AsyncAPI document/);
});

test('an AsyncAPI contract should check a payload by channel address and message name', async () => {
  const contract = await contractOf(DOC);
  contract.checkPayload('thing.events.v1', 'thing.made', { id });
  assert.throws(() => contract.checkPayload('thing.events.v1', 'thing.made', { id: 1 }), /breaks the contract/);
  assert.throws(() => contract.checkPayload('thing.events.v1', 'thing.lost', { id }), /no message thing.lost/);
});
