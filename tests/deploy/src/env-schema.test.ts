import { test } from 'node:test';
import assert from 'node:assert/strict';
import { envProblems } from './env-schema.js';

test('envProblems should check a service’s own settings with the schema the service loads, not the domain services’ common one', () => {
  assert.deepEqual(envProblems('notification-service', { KAFKA_GROUP_ID: 'notifications-b' }), []);
  assert.deepEqual(envProblems('chat-service', { SUBSCRIPTION_TOKEN_TTL_S: '600' }), []);
  const problems = envProblems('chat-service', { SUBSCRIPTION_TOKEN_TTL_S: '5' });
  assert.equal(problems.length, 1, problems.join('\n'));
  assert.match(problems[0] ?? '', /SUBSCRIPTION_TOKEN_TTL_S: Expected integer to be greater or equal to 10/);
  assert.deepEqual(envProblems('post-service', { SUBSCRIPTION_TOKEN_TTL_S: '600' }), [
    'SUBSCRIPTION_TOKEN_TTL_S: not read by post-service',
  ]);
});

test('envProblems should refuse OpenTelemetry variables for the demo, which starts no tracing', () => {
  assert.deepEqual(envProblems('demo', { OTEL_SERVICE_NAME: 'demo', PORT: '8090' }), [
    'OTEL_SERVICE_NAME: not read by demo',
  ]);
  assert.deepEqual(envProblems('fanout-gateway', { OTEL_SERVICE_NAME: 'fanout-gateway' }), []);
});
