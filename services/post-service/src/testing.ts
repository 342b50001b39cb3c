import { after, before } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { apiTestbed } from '@ripple/service/testbed';
import { buildApp } from './app.js';
import { createDb, transaction } from './db.js';

const migrationsDir = fileURLToPath(new URL('../prisma/migrations', import.meta.url));
const startBed = () => apiTestbed({ name: 'post-service', migrationsDir, createDb, transaction });

/**
 * For a test file: registers `before`/`after` hooks that start post-service's app on its own
 * test database (and Redis prefix, topics) and release them. Read `bed` and `app` inside tests.
 */
export function postServiceTestApp(): { bed: Awaited<ReturnType<typeof startBed>>; app: FastifyInstance } {
  const state = {} as { bed: Awaited<ReturnType<typeof startBed>>; app: FastifyInstance };
  before(async () => {
    state.bed = await startBed();
    state.app = await buildApp(state.bed.deps);
  });
  after(async () => {
    await state.app?.close();
    await state.bed?.close();
  });
  return state;
}
