// A child process for stalled-stdout.test.ts (not a test itself), run with --expose-gc and an IPC
// channel. It logs through `createLogger`'s default stdout destination while the parent does not
// read its stdout, then reports its memory and the dropped lines; on 'again' it logs one more line.
import { createLogger } from './logger.js';
import { createMetricsRegistry } from './metrics.js';

const totalBytes = Number(process.argv[2]);
const logger = createLogger('stalled-stdout-fixture');
const registry = createMetricsRegistry('stalled-stdout-fixture');
const payload = 'x'.repeat(1000);
const LINES_PER_TURN = 1000;

/** Heap in use after a full collection, in bytes: what the buffered lines keep alive. */
function heapUsed(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed;
}

async function droppedLines(): Promise<number> {
  const metric = await registry.getSingleMetric('log_lines_dropped_total')?.get();
  return metric?.values[0]?.value ?? -1;
}

const before = heapUsed();
let logged = 0;
const turn = () => {
  // Turns let sonic-boom's write callbacks run between bursts, as a service's traffic would.
  for (let i = 0; i < LINES_PER_TURN; i++) {
    logger.info({ i: logged, payload }, 'stalled line');
    logged += payload.length;
  }
  if (logged < totalBytes) setImmediate(turn);
  else
    void droppedLines().then((dropped) =>
      process.send?.({ heapGrowth: heapUsed() - before, rss: process.memoryUsage().rss, dropped }),
    );
};
setImmediate(turn);

process.on('message', (message) => {
  if (message !== 'again') return;
  logger.info('after the stall');
  process.disconnect();
});
