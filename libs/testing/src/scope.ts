import { constants } from 'node:os';
import { cleanupAll } from './cleanup.js';
import type { CleanupStep } from './cleanup.js';

/** The signals that end a script while it runs: Ctrl-C, a runner's or `kill`'s TERM, a closed terminal. */
export const ENDING_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** What {@link withCleanup} hands its body. */
export interface CleanupScope {
  /**
   * Registers a clean-up step (see `CleanupStep`) for something the body started or created: a
   * process, a connection, a topic, a database. Steps run once, last registered first.
   */
  readonly defer: (step: CleanupStep) => void;
}

/**
 * Runs `body` (a script: a benchmark, a tool) so that it leaves nothing behind. When the body
 * resolves or throws, or the process gets SIGINT, SIGTERM or SIGHUP, the steps it registered with
 * `defer` run once, last registered first, each whatever the others did (`cleanupAll`).
 *
 * After a signal the process exits with 128 + the signal's number (130, 143, 129) once the steps
 * settled, also when one failed (printed on stderr); signals that come meanwhile (a second Ctrl-C)
 * are acknowledged on stderr and do not cut the clean-up short: every step must end by itself.
 * While it runs, EPIPE on stdout or stderr (a reader or a terminal that went away) is ignored
 * rather than ending the process before it cleaned up.
 *
 * Resolves with the body's value once the clean-up succeeded. Rejects with the body's error when it
 * threw (a failed clean-up is then printed on stderr), else with the clean-up's `AggregateError`.
 * `name` (`bench:outbox run abc`) says in those lines whose clean-up it is.
 */
export async function withCleanup<T>(name: string, body: (scope: CleanupScope) => Promise<T>): Promise<T> {
  const steps: CleanupStep[] = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = () => (cleaning ??= cleanupAll(...steps.splice(0).reverse()));
  const report = (err: unknown): void => {
    process.stderr.write(`${name}: clean-up failed: ${String(err)}\n`);
  };
  /** Set by the first signal: settles never, the process exits once the clean-up settled. */
  let exiting: Promise<void> | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (exiting) {
      process.stderr.write(`${signal}: already cleaning up ${name}; it ends by itself\n`);
      return;
    }
    process.stderr.write(`\n${signal}: stopping what ${name} started and removing its resources\n`);
    exiting = cleanup()
      .catch(report)
      .finally(() => process.exit(128 + constants.signals[signal]));
  };
  // After a signal the body may still end (or fail, its connections closed under it): it must not
  // settle, nor its caller exit otherwise, before the signal's exit.
  const settle = async () => {
    try {
      await cleanup();
    } finally {
      await exiting;
    }
  };
  const ignoreEpipe = (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  };
  for (const signal of ENDING_SIGNALS) process.on(signal, onSignal);
  process.stdout.on('error', ignoreEpipe);
  process.stderr.on('error', ignoreEpipe);
  try {
    let value: T;
    try {
      value = await body({ defer: (step) => steps.push(step) });
    } catch (err) {
      await settle().catch(report);
      throw err;
    }
    await settle();
    return value;
  } finally {
    for (const signal of ENDING_SIGNALS) process.off(signal, onSignal);
    process.stdout.off('error', ignoreEpipe);
    process.stderr.off('error', ignoreEpipe);
  }
}
