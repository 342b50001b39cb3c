import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { apiTestbed } from '@ripple/service/testbed';
import { cleanupAll } from '@ripple/testing';
import { buildApp } from './app.js';
import { createDb, transaction } from './db.js';

const migrationsDir = fileURLToPath(new URL('../prisma/migrations', import.meta.url));
const startBed = (rateLimit?: { max: number; windowMs: number }) =>
  apiTestbed({ name: 'post-service', migrationsDir, createDb, transaction, rateLimit });

/**
 * For a test file: registers `before`/`after` hooks that start post-service's app on its own
 * test database (and Redis prefix, topics) and release them. Read `bed` and `app` inside tests.
 * `rateLimit`: requests per user per window (default: 10,000 per minute, out of the way).
 */
export function postServiceTestApp(rateLimit?: { max: number; windowMs: number }): {
  bed: Awaited<ReturnType<typeof startBed>>;
  app: FastifyInstance;
} {
  const state = {} as { bed: Awaited<ReturnType<typeof startBed>>; app: FastifyInstance };
  before(async () => {
    state.bed = await startBed(rateLimit);
    state.app = await buildApp(state.bed.deps);
  });
  after(() =>
    cleanupAll(
      () => state.app?.close(),
      () => state.bed?.close(),
    ),
  );
  return state;
}
