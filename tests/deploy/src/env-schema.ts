import type { TObject } from '@sinclair/typebox';
import { loadConfig } from '@ripple/config';
import { ChatEnv } from '@ripple/chat-service/config';
import { DemoEnv } from '@ripple/demo/config';
import { GatewayEnv } from '@ripple/fanout-gateway/config';
import { NotificationEnv } from '@ripple/notification-service/config';
import { PostEnv } from '@ripple/post-service/config';

/** A process's environment as its code reads it. */
interface ProcessEnv {
  /** The configuration schema the process loads at start-up (the code's own). */
  readonly schema: TObject;
  /** Whether it starts tracing, where the OpenTelemetry SDK reads the `OTEL_*` variables. */
  readonly traced: boolean;
}

/** Every process the repository ships (services/<name>), with how it reads its environment. */
export const PROCESSES: Readonly<Record<string, ProcessEnv>> = {
  'fanout-gateway': { schema: GatewayEnv, traced: true },
  'post-service': { schema: PostEnv, traced: true },
  'chat-service': { schema: ChatEnv, traced: true },
  'notification-service': { schema: NotificationEnv, traced: true },
  // services/demo/src/main.ts starts no tracing: it has no traced dependencies of its own.
  demo: { schema: DemoEnv, traced: false },
};

function processEnvOf(name: string): ProcessEnv {
  const found = PROCESSES[name];
  if (found === undefined) throw new Error(`${name} is not a process of the repository`);
  return found;
}

/** Variables read by the OpenTelemetry SDK (its specification's names), not by our schemas. */
export const OTEL_SDK_VARIABLE = /^OTEL_[A-Z_]+$/;

/**
 * Checks an environment a deployment file gives the process `name` against the code: every
 * variable must be one the process reads (its schema's, or, when it traces, the OpenTelemetry
 * SDK's `OTEL_*`), and the whole must load (types, ranges, patterns). Returns the problems, empty
 * when none; throws when `name` is not a process of the repository.
 */
export function envProblems(name: string, env: Readonly<Record<string, string>>): string[] {
  const { schema, traced } = processEnvOf(name);
  const unknown = Object.keys(env)
    .filter((variable) => !(variable in schema.properties) && !(traced && OTEL_SDK_VARIABLE.test(variable)))
    .map((variable) => `${variable}: not read by ${name}`);
  try {
    loadConfig(schema, env);
    return unknown;
  } catch (err) {
    return [...unknown, (err as Error).message];
  }
}
