import { Value } from '@sinclair/typebox/value';
import type { Static, TObject } from '@sinclair/typebox';

/** Thrown when the environment does not satisfy a schema; lists every problem at once. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/**
 * Names of variables whose values are secrets: a `_`-separated part SECRET, PASSWORD, PASSWD or
 * CREDENTIAL(S) (`JWT_SECRET`, `SECRET_KEY`), or a name ending in TOKEN, PRIVATE_KEY or API_KEY
 * (`GITHUB_TOKEN`). A setting that only mentions one (`SUBSCRIPTION_TOKEN_TTL_S`) is shown. A
 * schema can also mark one with `{ secret: true }`.
 */
const SECRET_NAME = /(^|_)(SECRET|PASSWORD|PASSWD|CREDENTIALS?)(_|$)|(^|_)(TOKEN|PRIVATE_KEY|API_?KEY)$/i;

/**
 * How a problem shows a variable's value: as given, but never a secret's (only its length) and
 * never a URL's password (`postgresql://user:***@host/db`).
 */
export function describeValue(name: string, value: string | undefined, schema?: { secret?: unknown }): string {
  if (value === undefined) return 'null';
  if (schema?.secret === true || SECRET_NAME.test(name)) return `a value of ${value.length} characters, not shown`;
  try {
    const url = new URL(value);
    if (url.password !== '') {
      url.password = '***';
      return JSON.stringify(url.toString());
    }
  } catch {
    // not a URL
  }
  return JSON.stringify(value);
}

/**
 * Reads the variables named by `schema` from `env`, applies defaults, converts strings to the
 * declared types and validates. Returns a frozen object; throws ConfigError naming each variable
 * with the value it got, except secrets (`describeValue`).
 */
export function loadConfig<S extends TObject>(schema: S, env: Env = process.env): Readonly<Static<S>> {
  const raw: Record<string, unknown> = {};
  for (const key of Object.keys(schema.properties)) {
    const value = env[key];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const withDefaults = Value.Default(schema, raw);
  const converted = Value.Convert(schema, withDefaults);
  // Value.Convert truncates what parses as a number: '1.5' and '1e4' became 1, '0x10' 16. Such a
  // variable, or one too large to read exactly, gets this one problem, not TypeBox's as well.
  const unreadable = new Map<string, string>();
  for (const name of Object.keys(schema.properties)) {
    const property = schema.properties[name] as { type?: unknown; secret?: unknown } | undefined;
    const value = env[name];
    if (property?.type !== 'integer' || !value) continue;
    const got = describeValue(name, value, property);
    if (!/^\s*[-+]?\d+\s*$/.test(value)) unreadable.set(name, `${name}: Expected a decimal integer (got ${got})`);
    // Past 2^53 a decimal reads as a nearby integer, not as itself (and reaches timers and SQL).
    else if (!Number.isSafeInteger(Number(value)))
      unreadable.set(name, `${name}: Expected an integer of at most ${Number.MAX_SAFE_INTEGER} (got ${got})`);
  }
  const problems = [...Value.Errors(schema, converted)].flatMap((e) => {
    const name = e.path.replace(/^\//, '') || '(root)';
    if (unreadable.has(name)) return [];
    const property = schema.properties[name] as { secret?: unknown } | undefined;
    return [`${name}: ${e.message} (got ${describeValue(name, env[name], property)})`];
  });
  problems.push(...unreadable.values());
  if (problems.length > 0) throw new ConfigError([...new Set(problems)]);
  return Object.freeze(converted as Static<S>);
}
