import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import { CommonEnv, ConfigError, loadConfig } from './index.js';

const Schema = Type.Object({ PORT: Type.Integer({ default: 8080, minimum: 1, maximum: 65535 }), ...CommonEnv });

test('loadConfig should apply the documented defaults when nothing is set', () => {
  const config = loadConfig(Schema, {});
  assert.equal(config.PORT, 8080);
  assert.equal(config.KAFKA_BROKERS, '127.0.0.1:9092');
  assert.equal(config.REDIS_URL, 'redis://127.0.0.1:6379');
  assert.equal(config.NODE_ENV, 'development');
  assert.ok(Object.isFrozen(config));
});

test('loadConfig should convert numeric strings', () => {
  assert.equal(loadConfig(Schema, { PORT: '3001' }).PORT, 3001);
});

test('loadConfig should report every bad variable by name at once', () => {
  assert.throws(
    () => loadConfig(Schema, { PORT: 'abc', REDIS_URL: 'http://x', LOG_LEVEL: 'loud' }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const text = err.message;
      for (const name of ['PORT', 'REDIS_URL', 'LOG_LEVEL']) assert.match(text, new RegExp(name));
      return true;
    },
  );
});

test('loadConfig should treat an empty variable as unset', () => {
  assert.equal(loadConfig(Schema, { PORT: '' }).PORT, 8080);
});
