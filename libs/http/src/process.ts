import { ConfigError } from '@ripple/config';
import { isRippleError } from '@ripple/errors';
import { settleLogWrites, shutdownTracing } from '@ripple/telemetry';
import type { Logger } from '@ripple/telemetry';

export interface RunningProcess {
  readonly logger: Logger;
  /** Stops accepting work, finishes what is in flight and releases every resource. */
  readonly stop: () => Promise<void>;
}

/**
 * Runs a process's start-up and wires graceful shutdown on SIGTERM/SIGINT. A configuration
 * problem prints one clear message (no stack trace) and exits 2; any other start-up failure
 * exits 1. Once started, an uncaught exception (or an unhandled rejection, which Node raises as
 * one) is logged as `fatal` with its error and origin, and the process exits 1 at once, without
 * `stop`: its state is unknown. A second SIGTERM/SIGINT during the shutdown exits 1 at once.
 * The logger's buffered lines are flushed on exit (`createLogger`), in order: each exit first lets a
 * log write already in flight return (`settleLogWrites`, at most a second).
 */
export function runProcess(name: string, start: () => Promise<RunningProcess>, shutdownTimeoutMs = 30_000): void {
  // A start that throws before it makes its promise (reading its configuration in its argument
  // list, as the domain services do) is answered like one that rejects.
  const started = Promise.resolve().then(start);
  started.then(
    ({ logger, stop }) => {
      let stopping = false;
      // Through process.exit, which writes the logger's buffered lines (a signal's default action
      // would drop them), once a write in flight returned, so that they stay in order.
      const exit = (code: number): void => {
        void settleLogWrites(logger).finally(() => process.exit(code));
      };
      const shutdown = (signal: string): void => {
        if (stopping) {
          // A second signal (an impatient operator or supervisor): exit now.
          logger.warn({ signal }, 'signalled again while shutting down; exiting now');
          exit(1);
          return;
        }
        stopping = true;
        logger.info({ signal }, 'shutting down');
        const timer = setTimeout(() => {
          logger.error('shutdown timed out; exiting');
          exit(1);
        }, shutdownTimeoutMs);
        timer.unref();
        stop()
          .then(shutdownTracing)
          .then(
            () => {
              logger.info('stopped');
              exit(0);
            },
            (err: unknown) => {
              logger.error({ err }, 'shutdown failed');
              exit(1);
            },
          );
      };
      process.on('uncaughtException', (err, origin) => {
        logger.fatal({ err, origin }, 'uncaught exception; exiting');
        exit(1);
      });
      process.on('SIGTERM', () => shutdown('SIGTERM'));
      process.on('SIGINT', () => shutdown('SIGINT'));
    },
    (err: unknown) => {
      if (err instanceof ConfigError || (isRippleError(err) && err.code === 'CONFIG_INVALID')) {
        process.stderr.write(`${name}: ${(err as Error).message}\n`);
        process.exit(2);
      }
      process.stderr.write(
        `${name}: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exit(1);
    },
  );
}
