import { Type } from '@sinclair/typebox';
import { CommonEnv, loadConfig } from '@ripple/config';

export const SERVICE_NAME = 'demo';

const HttpUrl = (default_: string) => Type.String({ default: default_, pattern: '^https?://' });

export const DemoEnv = Type.Object({
  NODE_ENV: CommonEnv.NODE_ENV,
  LOG_LEVEL: CommonEnv.LOG_LEVEL,
  LOG_BUFFER_MAX_BYTES: CommonEnv.LOG_BUFFER_MAX_BYTES,
  HOST: CommonEnv.HOST,
  LISTEN_BACKLOG: CommonEnv.LISTEN_BACKLOG,
  PORT: Type.Integer({ default: 8090, minimum: 0, maximum: 65535 }),
  /** Signs the development tokens the demo hands out (the services' secret). */
  JWT_SECRET: CommonEnv.JWT_SECRET,
  /** The gateway's WebSocket URL as the browser reaches it. */
  DEMO_GATEWAY_URL: Type.String({ default: 'ws://127.0.0.1:8080/ws', pattern: '^wss?://' }),
  DEMO_POST_SERVICE_URL: HttpUrl('http://127.0.0.1:3001'),
  DEMO_CHAT_SERVICE_URL: HttpUrl('http://127.0.0.1:3002'),
  DEMO_NOTIFICATION_SERVICE_URL: HttpUrl('http://127.0.0.1:3003'),
});

/** The demo's configuration from the environment; every problem reported at once. */
export function loadDemoConfig(env: NodeJS.ProcessEnv = process.env) {
  return loadConfig(DemoEnv, env);
}
