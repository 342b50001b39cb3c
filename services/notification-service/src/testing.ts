import { fileURLToPath } from 'node:url';
import { apiTestbed, testApp } from '@ripple/service/testbed';
import { buildApp } from './app.js';
import { createDb, transaction } from './db.js';

const migrationsDir = fileURLToPath(new URL('../prisma/migrations', import.meta.url));

/**
 * For a test file: notification-service's app on its own test database (and Redis prefix,
 * topics), started before the file's tests and released after (`testApp`).
 */
export const notificationServiceTestApp = () =>
  testApp(() => apiTestbed({ name: 'notification-service', migrationsDir, createDb, transaction }), buildApp);
