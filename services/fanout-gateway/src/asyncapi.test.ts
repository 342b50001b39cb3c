import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Value } from '@sinclair/typebox/value';
import { AsyncApiContract } from '@ripple/testing';
import { renderGatewayAsyncApi } from './asyncapi.js';
import { gapFrame } from './protocol.js';
import { ServerFrames } from './server-frames.js';

const DOC = new URL('../../../docs/asyncapi-gateway.yaml', import.meta.url);

test('docs/asyncapi-gateway.yaml should be up to date with the frame schemas (run `pnpm asyncapi`)', () => {
  assert.equal(readFileSync(DOC, 'utf8'), renderGatewayAsyncApi());
});

test('docs/asyncapi-gateway.yaml should be a valid AsyncAPI document for @asyncapi/parser', async () => {
  await AsyncApiContract.load(DOC);
});

test('the frames the gateway builds should match their published schemas', () => {
  const gap = gapFrame('creator:u1', { offset: '7', epoch: '6745f0a10a2b3c1f9e8d7c6b' });
  assert.equal(Value.Check(ServerFrames.gap, gap), true);
  assert.equal(Value.Check(ServerFrames.gap, { ...gap, recovered: true }), false);
  assert.equal(Value.Check(ServerFrames.pong, { op: 'pong', id: '5', extra: 1 }), false);
});
