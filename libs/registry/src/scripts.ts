import type { ChainableCommander, Redis } from 'ioredis';

/** A Lua script run by its SHA (EVALSHA, loaded on first use by ioredis), on a client or in a pipeline. */
export type ScriptRunner = {
  (redis: Redis, ...args: string[]): Promise<unknown>;
  queue(pipeline: ChainableCommander, ...args: string[]): void;
};

/**
 * Defines `lua` as a command of `redis` (ioredis `defineCommand`: EVALSHA, with EVAL when the
 * server does not have it yet, e.g. after a restart), so the script text is not sent on every call.
 * `args` are its KEYS (the first `keys`) then its ARGV; with `keys` undefined, the first arg is the
 * number of KEYS that follow (a script over a varying number of keys).
 */
export function script(redis: Redis, name: string, keys: number | undefined, lua: string): ScriptRunner {
  redis.defineCommand(name, keys === undefined ? { lua } : { numberOfKeys: keys, lua });
  type Custom = Record<string, (...args: string[]) => unknown>;
  const run = (client: Redis, ...args: string[]) => (client as unknown as Custom)[name]?.(...args) as Promise<unknown>;
  return Object.assign(run, {
    queue: (pipeline: ChainableCommander, ...args: string[]) => {
      (pipeline as unknown as Custom)[name]?.(...args);
    },
  });
}

/** Runs a pipeline and returns each command's result, throwing the first error. */
export async function execAll(pipeline: ChainableCommander): Promise<unknown[]> {
  const results = (await pipeline.exec()) ?? [];
  const failed = results.find(([err]) => err !== null);
  if (failed?.[0]) throw failed[0];
  return results.map(([, value]) => value);
}
