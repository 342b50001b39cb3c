import { pino } from 'pino';
import type { DestinationStream } from 'pino';
import { Counter } from 'prom-client';
import type { Registry } from 'prom-client';

/** The default bound on log bytes waiting for stdout (16 MiB); `LOG_BUFFER_MAX_BYTES` sets it. */
const DEFAULT_LOG_BUFFER_MAX_BYTES = 16 * 1024 * 1024;

/**
 * Lines this process dropped because stdout did not take them fast enough. Process-wide, as stdout
 * is: a logger may exist before any metrics registry, and each registry reports the same count.
 */
let droppedLines = 0;

/**
 * The process's stdout as pino's default destination makes it in pino 10 (sonic-boom, asynchronous,
 * `minLength: 0`, flushed on exit), with at most `maxBytes` bytes waiting in memory, the write in
 * flight included: while stdout stalls (a full pipe, a collector that stopped reading) a line that
 * would pass the bound is dropped whole and counted in `log_lines_dropped_total` instead of growing
 * the heap until the process runs out of memory. A line longer than `maxBytes` is always dropped.
 *
 * @param maxBytes a positive integer, in bytes (0 would mean unbounded to sonic-boom: refused)
 * @throws RangeError if `maxBytes` is not a positive integer
 */
export function stdoutDestination(maxBytes: number = DEFAULT_LOG_BUFFER_MAX_BYTES): DestinationStream {
  if (!Number.isInteger(maxBytes) || maxBytes < 1)
    throw new RangeError(`log buffer bound must be a positive integer (got ${maxBytes})`);
  const stream = pino.destination({ dest: 1, sync: false, minLength: 0, maxLength: maxBytes });
  stream.on('drop', () => droppedLines++);
  return stream;
}

/** Adds `log_lines_dropped_total` (see {@link stdoutDestination}) to `registry`. */
export function registerDroppedLogLines(registry: Registry): void {
  new Counter({
    name: 'log_lines_dropped_total',
    help: 'Log lines dropped because stdout stalled and the log buffer was full (LOG_BUFFER_MAX_BYTES)',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(droppedLines);
    },
  });
}

/** What `settleLogWrites` needs of a pino destination: sonic-boom's mode and its write in flight. */
interface SonicBoomState {
  sync: boolean;
  /** sonic-boom's own flag (4.x): an asynchronous write was handed to the OS and has not returned. */
  _writing: boolean;
}

const isSonicBoom = (stream: unknown): stream is SonicBoomState =>
  typeof stream === 'object' && stream !== null && 'sync' in stream && '_writing' in stream;

/**
 * Call before `process.exit`, so that the lines logged before it reach stdout whole and in order.
 * pino flushes its destination on `exit` with sonic-boom's `flushSync`, which writes what is
 * buffered but not a write already handed to the OS: that one can land after the flush, so a
 * burst's first lines came after its last (sonic-boom#101). This switches the logger's stdout
 * destination to synchronous writes, so that once the write in flight returns everything after it
 * goes out at once and in order, and resolves when none is in flight, or after `timeoutMs` (ms).
 * A stdout that stopped taking bytes still holds the process after its exit handlers: the write
 * in flight is blocked in libuv's thread pool, which Node joins on exit, until the reader reads.
 * Resolves at once for a destination that is not sonic-boom (a test's stream).
 */
export async function settleLogWrites(logger: object, timeoutMs = 1000): Promise<void> {
  const stream = (logger as Record<symbol, unknown>)[pino.symbols.streamSym];
  if (!isSonicBoom(stream)) return;
  stream.sync = true;
  const deadline = Date.now() + timeoutMs;
  while (stream._writing && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 1));
}
