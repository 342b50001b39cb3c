#!/usr/bin/env node
// Mints a development access token: `pnpm token --user u1 [--ttl 3600]`.
import { parseArgs } from 'node:util';
import { resolveJwtSecret, signAccessToken } from './tokens.js';

const { values } = parseArgs({
  options: { user: { type: 'string' }, ttl: { type: 'string', default: '3600' } },
});
const env = { JWT_SECRET: process.env.JWT_SECRET || undefined, NODE_ENV: process.env.NODE_ENV ?? 'development' };
if (env.NODE_ENV === 'production') {
  process.stderr.write('refusing to mint development tokens with NODE_ENV=production\n');
  process.exit(2);
}
const ttl = Number(values.ttl);
if (values.user === undefined || values.user === '' || !Number.isInteger(ttl) || ttl <= 0) {
  process.stderr.write('usage: pnpm token --user <userId> [--ttl <seconds>]\n');
  process.exit(2);
}
const secret = resolveJwtSecret(env, (msg) => process.stderr.write(`warning: ${msg}\n`));
process.stdout.write(`${await signAccessToken(secret, values.user, { ttlSeconds: ttl })}\n`);
