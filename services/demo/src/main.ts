// The demo web app process. It has no traced dependencies of its own, so tracing is not started.
import { fileURLToPath } from 'node:url';
import { resolveJwtSecret } from '@ripple/auth';
import { listeningPort, runProcess } from '@ripple/http';
import { createLogger, createMetricsRegistry } from '@ripple/telemetry';
import { buildDemoApp } from './app.js';
import { bundleForBrowser } from './bundle.js';
import { SERVICE_NAME, loadDemoConfig } from './config.js';

runProcess(SERVICE_NAME, async () => {
  const config = loadDemoConfig();
  const logger = createLogger(SERVICE_NAME, config.LOG_LEVEL, { bufferMaxBytes: config.LOG_BUFFER_MAX_BYTES });
  const devSecret = config.NODE_ENV === 'production' ? undefined : resolveJwtSecret(config, (msg) => logger.warn(msg));
  const app = await buildDemoApp({
    logger,
    registry: createMetricsRegistry(SERVICE_NAME),
    devSecret,
    script: await bundleForBrowser(fileURLToPath(new URL('./web/app.js', import.meta.url))),
    gatewayUrl: config.DEMO_GATEWAY_URL,
    upstreams: {
      posts: config.DEMO_POST_SERVICE_URL,
      chat: config.DEMO_CHAT_SERVICE_URL,
      notifications: config.DEMO_NOTIFICATION_SERVICE_URL,
    },
  });
  await app.listen({ host: config.HOST, port: config.PORT, backlog: config.LISTEN_BACKLOG });
  logger.info({ port: listeningPort(app) }, 'listening');
  return { logger, stop: () => app.close() };
});
