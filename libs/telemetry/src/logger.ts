import { trace } from '@opentelemetry/api';
import { pino } from 'pino';
import type { DestinationStream, Logger, LevelWithSilent, LoggerOptions, redactOptions } from 'pino';
import { REDACTED, redactText, redactUrl } from './redact.js';
import { stdoutDestination } from './stdout.js';

export type { Logger };

/**
 * What pino redacts on every line: the request URL fastify logs (`req.url`) keeps everything but
 * its secret query parameters; the Authorization header is replaced whole; error messages and
 * stacks lose any token they echo.
 */
const redaction: redactOptions = {
  paths: ['req.url', 'req.headers.authorization', 'err.message', 'err.stack'],
  censor: (value: unknown, path: string[]) => {
    if (typeof value !== 'string') return value === undefined ? value : REDACTED;
    if (path.at(-1) === 'url') return redactUrl(value);
    if (path[0] === 'err') return redactText(value);
    return REDACTED;
  },
};

/**
 * Structured JSON logs, one line per record, with the service name on every line and, inside a
 * traced operation, its `trace_id` and `span_id`. Secrets are redacted (see {@link redaction}).
 *
 * `destination` is where lines go: a stream (tests capture lines so), or, by default, stdout through
 * {@link stdoutDestination} with `bufferMaxBytes` (default 16 MiB) as the bound on bytes waiting.
 * Writes are asynchronous (sonic-boom with `sync: false`, `minLength: 0`, as pino's own default): a
 * line is handed to a write at once when none is in flight, and lines logged while one is go
 * together in the next. While stdout stalls, lines past the bound are dropped and counted
 * (`log_lines_dropped_total`), so a stuck log collector cannot run the process out of memory.
 * Nothing written is lost when the process ends by `process.exit` (pino flushes synchronously on
 * `exit`), by running out of work (`beforeExit`), or by an uncaught exception, which `runProcess`
 * logs as fatal before it exits; only a SIGKILL, or a signal with no handler (before `runProcess`
 * installed its own), loses the lines still buffered.
 */
export function createLogger(
  service: string,
  level: LevelWithSilent = 'info',
  destination: DestinationStream | { bufferMaxBytes: number } = stdoutDestination(),
): Logger {
  const options: LoggerOptions = {
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: redaction,
    // Any other top-level string field, and the message itself, may echo a URL or a header (a
    // library logging `{ path: request.url }`): secret query parameters and Bearer tokens go too.
    formatters: {
      log(object) {
        for (const [key, value] of Object.entries(object))
          if (typeof value === 'string') object[key] = redactText(value);
        return object;
      },
    },
    hooks: {
      logMethod(args, method) {
        method.apply(
          this,
          args.map((arg) => (typeof arg === 'string' ? redactText(arg) : arg)) as Parameters<typeof method>,
        );
      },
    },
    mixin() {
      const span = trace.getActiveSpan();
      if (!span) return {};
      const { traceId, spanId } = span.spanContext();
      return { trace_id: traceId, span_id: spanId };
    },
  };
  return pino(options, 'write' in destination ? destination : stdoutDestination(destination.bufferMaxBytes));
}
