import { fileURLToPath } from 'node:url';
import { apiTestbed, testApp } from '@ripple/service/testbed';
import { buildApp } from './app.js';
import { createDb, transaction } from './db.js';

const migrationsDir = fileURLToPath(new URL('../prisma/migrations', import.meta.url));
const startBed = (rateLimit?: { max: number; windowMs: number }) =>
  apiTestbed({ name: 'post-service', migrationsDir, createDb, transaction, rateLimit });

/**
 * For a test file: post-service's app on its own test database (and Redis prefix, topics), started
 * before the file's tests and released after (`testApp`). `rateLimit`: requests per user per window
 * (default: 10,000 per minute, out of the way).
 */
export const postServiceTestApp = (rateLimit?: { max: number; windowMs: number }) =>
  testApp(() => startBed(rateLimit), buildApp);
