// A child process for process.test.ts (not a test itself): a `runProcess` service that logs a burst
// of lines with the real logger (stdout, asynchronous) and then ends the way argv[2] says:
//   graceful  logs "ready" once started; on SIGTERM, `stop` logs the burst, then runProcess exits 0
//   exit      logs the burst during start-up and calls process.exit(0) at once
//   crash     once started, logs the burst and throws (runProcess logs fatal and exits 1)
//   reject    once started, logs the burst and leaves a promise rejected unhandled
//   slow      as graceful, but `stop` then waits (a drain that takes long) until a second signal
import { createLogger } from '@ripple/telemetry';
import { runProcess } from './process.js';

const mode = process.argv[2];
const lines = Number(process.argv[3]);
const logger = createLogger('process-fixture');
const burst = () => {
  for (let i = 0; i < lines; i++) logger.info({ i }, 'burst line');
};

runProcess('process-fixture', () => {
  if (mode === 'exit') {
    burst();
    process.exit(0);
  }
  if (mode === 'crash') {
    setImmediate(() => {
      burst();
      throw new Error('fixture crash');
    });
  } else if (mode === 'reject') {
    setImmediate(() => {
      burst();
      void Promise.reject(new Error('fixture rejection'));
    });
  } else setImmediate(() => logger.info('ready')); // once runProcess handles SIGTERM
  // Keeps the process alive until it stops, as a service's listening server does.
  const serving = setInterval(() => undefined, 60_000);
  return Promise.resolve({
    logger,
    stop: () => {
      clearInterval(serving);
      burst();
      return mode === 'slow' ? new Promise<void>((resolve) => setTimeout(resolve, 60_000)) : Promise.resolve();
    },
  });
});
