/**
 * One step of a clean-up: a function (sync or async) that releases one thing, or a value that is
 * not a function (`undefined`, `null`, `false`) for a step that has nothing to release, so a step
 * can be written `handle && (() => handle.stop())`. A handle a failed set-up left undefined is
 * skipped the same way by `() => handle?.stop()`.
 */
export type CleanupStep = (() => unknown) | undefined | null | false;

/**
 * Runs every clean-up step in the order given, each one after the previous one settled, whatever
 * the others did: a step that throws (or rejects) does not skip the ones after it, and a step that
 * is not a function is skipped. Use it in `after`/`afterEach` hooks and in scripts, so that a failed
 * `before` (a service that did not start, a handle left undefined) or a failed first step still
 * stops every process and removes every topic, key and database.
 *
 * Resolves once every step settled and none failed. Rejects with an `AggregateError` whose
 * `errors` are the failures in step order (thrown values as they were) and whose message names
 * each of them, so a clean-up that failed is still reported, after all the others ran.
 */
export async function cleanupAll(...steps: readonly CleanupStep[]): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    if (typeof step !== 'function') continue;
    try {
      await step();
    } catch (err) {
      errors.push(err);
    }
  }
  if (errors.length > 0) {
    const messages = errors.map((err) => (err instanceof Error ? err.message : String(err)));
    throw new AggregateError(
      errors,
      `${errors.length} of ${steps.length} clean-up steps failed: ${messages.join('; ')}`,
    );
  }
}
