import type { TObject } from '@sinclair/typebox';
import { loadConfig } from '@ripple/config';
import { GatewayEnv } from '@ripple/fanout-gateway/config';
import { domainServiceEnv } from '@ripple/service';
import { DEPLOYABLES } from './manifests.js';

/** The configuration schema a deployable reads its environment with (the code's own). */
export function envSchemaOf(deployable: string): TObject {
  if (deployable === 'fanout-gateway') return GatewayEnv;
  const port = DEPLOYABLES[deployable];
  if (port === undefined) throw new Error(`${deployable} is not a deployable`);
  return domainServiceEnv(deployable, port);
}

/** Variables read by the OpenTelemetry SDK (its specification's names), not by our schemas. */
const OTEL_SDK_VARIABLE = /^OTEL_[A-Z_]+$/;

/**
 * Checks an environment a deployment file gives `deployable` against the code: every variable
 * must be one the process reads (its schema's, or the OpenTelemetry SDK's `OTEL_*`), and the
 * whole must load (types, ranges, patterns). Returns the problems, empty when none.
 */
export function envProblems(deployable: string, env: Readonly<Record<string, string>>): string[] {
  const schema = envSchemaOf(deployable);
  const unknown = Object.keys(env)
    .filter((name) => !(name in schema.properties) && !OTEL_SDK_VARIABLE.test(name))
    .map((name) => `${name}: not read by ${deployable}`);
  try {
    loadConfig(schema, env);
    return unknown;
  } catch (err) {
    return [...unknown, (err as Error).message];
  }
}
