#!/usr/bin/env node
// Mints a development access token: `pnpm token --user u1 [--ttl 3600]`.
import { parseArgs } from 'node:util';
import { USER_ID, resolveJwtSecret, signAccessToken } from './tokens.js';

const USAGE = 'usage: pnpm token --user <userId> [--ttl <seconds>]\n  userId: 1-128 of A-Z a-z 0-9 _ -\n';
const usage = (status: number): never => {
  (status === 0 ? process.stdout : process.stderr).write(USAGE);
  process.exit(status);
};

let values: { user?: string; ttl?: string; help?: boolean } = {};
try {
  ({ values } = parseArgs({
    options: { user: { type: 'string' }, ttl: { type: 'string', default: '3600' }, help: { type: 'boolean' } },
  }));
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  usage(2);
}
if (values.help) usage(0);
const env = { JWT_SECRET: process.env.JWT_SECRET || undefined, NODE_ENV: process.env.NODE_ENV ?? 'development' };
if (env.NODE_ENV === 'production') {
  process.stderr.write('refusing to mint development tokens with NODE_ENV=production\n');
  process.exit(2);
}
const ttl = Number(values.ttl);
// A subject the gateway and the services refuse (AUTH_TOKEN_INVALID) is refused here already.
if (values.user === undefined || !USER_ID.test(values.user) || !Number.isInteger(ttl) || ttl <= 0) usage(2);
const secret = resolveJwtSecret(env, (msg) => process.stderr.write(`warning: ${msg}\n`));
process.stdout.write(`${await signAccessToken(secret, values.user ?? '', { ttlSeconds: ttl })}\n`);
