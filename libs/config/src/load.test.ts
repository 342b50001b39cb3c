import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Type } from '@sinclair/typebox';
import { CommonEnv, ConfigError, describeValue, loadConfig } from './index.js';

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

test('LOG_BUFFER_MAX_BYTES should default to 16 MiB and refuse 0, which sonic-boom takes for unbounded', () => {
  assert.equal(loadConfig(Schema, {}).LOG_BUFFER_MAX_BYTES, 16 * 1024 * 1024);
  assert.equal(loadConfig(Schema, { LOG_BUFFER_MAX_BYTES: '1048576' }).LOG_BUFFER_MAX_BYTES, 1048576);
  for (const value of ['0', '-1', '1.5'])
    assert.throws(
      () => loadConfig(Schema, { LOG_BUFFER_MAX_BYTES: value }),
      (err: unknown) => err instanceof ConfigError && err.message.includes('LOG_BUFFER_MAX_BYTES'),
      value,
    );
});

test('loadConfig should refuse an integer variable that is not a decimal integer, not truncate it', () => {
  for (const value of ['1.5', '1e4', '0x10', '4096.0']) {
    assert.throws(
      () => loadConfig(Schema, { LISTEN_BACKLOG: value }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.message.includes(`LISTEN_BACKLOG: Expected a decimal integer (got "${value}")`),
      value,
    );
  }
  assert.equal(loadConfig(Schema, { LISTEN_BACKLOG: ' 1024 ' }).LISTEN_BACKLOG, 1024);
});

test('loadConfig should report a variable that is not a decimal integer once, with one message', () => {
  // "x" failed both TypeBox's check ("Expected integer") and the decimal one: two lines for one value.
  for (const value of ['x', '1.5', '-']) {
    assert.throws(
      () => loadConfig(Schema, { LISTEN_BACKLOG: value, PORT: '0' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        assert.deepEqual(err.problems, [
          'PORT: Expected integer to be greater or equal to 1 (got "0")',
          `LISTEN_BACKLOG: Expected a decimal integer (got "${value}")`,
        ]) === undefined,
      value,
    );
  }
});

test('loadConfig should treat an empty variable as unset', () => {
  assert.equal(loadConfig(Schema, { PORT: '' }).PORT, 8080);
});

test('loadConfig should never print a secret variable’s value, nor a URL’s password, in its error', () => {
  const secret = 'short-secret';
  const Secrets = Type.Object({
    ...CommonEnv,
    DATABASE_URL: Type.String({ pattern: '^postgres(ql)?://' }),
    API_TOKEN: Type.String({ minLength: 40 }),
    SIGNING_MATERIAL: Type.String({ minLength: 40, secret: true }),
  });
  assert.throws(
    () =>
      loadConfig(Secrets, {
        JWT_SECRET: secret,
        DATABASE_URL: 'mysql://app:hunter2-password@db:3306/x',
        API_TOKEN: 'tok-123456',
        SIGNING_MATERIAL: 'material-987',
        REDIS_URL: 'http://user:redis-pass@cache:6379',
      }),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      for (const name of ['JWT_SECRET', 'DATABASE_URL', 'API_TOKEN', 'SIGNING_MATERIAL', 'REDIS_URL']) {
        assert.match(err.message, new RegExp(name));
      }
      for (const value of [secret, 'hunter2-password', 'tok-123456', 'material-987', 'redis-pass']) {
        assert.ok(!err.message.includes(value), `${value} is not printed:\n${err.message}`);
      }
      assert.match(err.message, /JWT_SECRET: .*\(got a value of 12 characters, not shown\)/);
      assert.match(err.message, /mysql:\/\/app:\*\*\*@db:3306\/x/, 'the rest of a URL is shown');
      return true;
    },
  );
});

test('loadConfig should refuse a REDIS_KEY_PREFIX with a brace: it would move a channel’s keys out of its hash tag’s slot', () => {
  for (const value of ['a{b:', 'x}:', '{tenant}:']) {
    assert.throws(() => loadConfig(Schema, { REDIS_KEY_PREFIX: value }), /REDIS_KEY_PREFIX/, value);
  }
  assert.equal(loadConfig(Schema, { REDIS_KEY_PREFIX: 'tenant-1:' }).REDIS_KEY_PREFIX, 'tenant-1:');
});

test('loadConfig should refuse an integer variable too large to hold exactly, not round it', () => {
  // 2^53 + 1 reads as 2^53; twenty nines as 1e20, a TTL PostgreSQL's intervals cannot hold.
  const Ttl = Type.Object({ TTL_MS: Type.Integer({ default: 1000, minimum: 1 }) });
  for (const value of ['9007199254740993', '99999999999999999999']) {
    assert.throws(
      () => loadConfig(Ttl, { TTL_MS: value }),
      (err: unknown) =>
        err instanceof ConfigError &&
        assert.deepEqual(err.problems, [`TTL_MS: Expected an integer of at most 9007199254740991 (got "${value}")`]) ===
          undefined,
      value,
    );
  }
  assert.equal(loadConfig(Ttl, { TTL_MS: '9007199254740991' }).TTL_MS, Number.MAX_SAFE_INTEGER);
});

test('describeValue should hide the values of secret names only, not of settings that merely mention one', () => {
  for (const name of [
    'JWT_SECRET',
    'DB_PASSWORD',
    'API_TOKEN',
    'GITHUB_TOKEN',
    'SIGNING_PRIVATE_KEY',
    'API_KEY',
    'APIKEY',
    'SECRET_KEY',
    'AWS_CREDENTIALS',
  ]) {
    assert.equal(describeValue(name, 'abc'), 'a value of 3 characters, not shown', name);
  }
  // Durations and windows of tokens are numbers an operator needs to see when one is refused.
  for (const name of ['SUBSCRIPTION_TOKEN_TTL_S', 'TOKEN_REFRESH_WINDOW_MS', 'JWT_PUBLIC_KEY', 'REDIS_KEY_PREFIX']) {
    assert.equal(describeValue(name, 'abc'), '"abc"', name);
  }
});
