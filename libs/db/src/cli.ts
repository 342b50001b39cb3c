#!/usr/bin/env node
// Creates a service database when missing and applies its migrations:
//   ripple-migrate --url postgresql://postgres@127.0.0.1:5432/post_service [--migrations dir]
import { parseArgs } from 'node:util';
import { ensureDatabase } from './database.js';
import { applyMigrations } from './migrate.js';

const { values } = parseArgs({ options: { url: { type: 'string' }, migrations: { type: 'string' } } });
if (values.url === undefined) {
  process.stderr.write('usage: ripple-migrate --url <postgresql://...> [--migrations <dir>]\n');
  process.exit(2);
}
try {
  const created = await ensureDatabase(values.url);
  const name = new URL(values.url).pathname.slice(1);
  process.stdout.write(`database ${name}: ${created ? 'created' : 'exists'}\n`);
  if (values.migrations !== undefined) {
    const { applied, alreadyApplied } = await applyMigrations(values.url, values.migrations);
    process.stdout.write(`  migrations: ${applied.length} applied, ${alreadyApplied.length} already applied\n`);
  }
} catch (err) {
  process.stderr.write(`ripple-migrate: ${(err as Error).message}\n`);
  process.exit(1);
}
