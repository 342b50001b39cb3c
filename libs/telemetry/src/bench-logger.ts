#!/usr/bin/env node
// Logger benchmark (not a test): `bash scripts/bench.sh logger`. What one request's log line costs
// the event loop: a child process logs fastify-like "request completed" lines with `createLogger`
// (redaction, trace-id mixin) into a pipe this process drains, as a supervisor does, at 40 lines/s
// (one every 25 ms) and at 1,000 lines/s (ten every 10 ms), through three destinations: the
// logger's default (asynchronous sonic-boom, bounded: `stdoutDestination`), a synchronous one (`pino.destination({ sync: true })`), and
// one that writes nothing (formatting alone). Prints ms of the event loop spent inside the logging
// calls per line, after one unmeasured second; destinations alternate within each round.
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { DestinationStream } from 'pino';
import { createLogger } from './logger.js';

const SECONDS = Number(process.env.BENCH_LOGGER_SECONDS ?? 10);
const ROUNDS = Number(process.env.BENCH_LOGGER_ROUNDS ?? 2);
const DESTINATIONS = ['default', 'sync', 'none'] as const;
type Destination = (typeof DESTINATIONS)[number];
const RATES = [
  { label: '40/s', perTick: 1, tickMs: 25 },
  { label: '1000/s', perTick: 10, tickMs: 10 },
];

/** In the child: logs for `SECONDS` + 1 s, then reports ms per line of the measured part on stderr. */
function child(destination: Destination, perTick: number, tickMs: number): void {
  const streams: Record<Destination, DestinationStream | undefined> = {
    default: undefined,
    sync: pino.destination({ fd: 1, sync: true }),
    none: { write: () => undefined },
  };
  const logger = createLogger('bench-logger', 'info', streams[destination]);
  const req = { method: 'POST', url: '/posts', host: '127.0.0.1:3000', remoteAddress: '127.0.0.1', remotePort: 51234 };
  let lines = 0;
  let measuredFrom = 0;
  let inLogMs = 0;
  setTimeout(() => {
    measuredFrom = lines;
    inLogMs = 0;
  }, 1000);
  const timer = setInterval(() => {
    const t0 = performance.now();
    for (let i = 0; i < perTick; i++) {
      logger.info({ reqId: `req-${lines++}`, req, res: { statusCode: 201 }, responseTime: 3.2 }, 'request completed');
    }
    inLogMs += performance.now() - t0;
  }, tickMs);
  setTimeout(
    () => {
      clearInterval(timer);
      process.stderr.write(`${(inLogMs / (lines - measuredFrom)).toFixed(3)}\n`);
      process.exit(0);
    },
    (SECONDS + 1) * 1000,
  );
}

/** Runs one child; resolves to its ms per line. */
async function measure(destination: Destination, perTick: number, tickMs: number): Promise<string> {
  const self = fileURLToPath(import.meta.url);
  const proc = spawn(process.execPath, [self, 'child', destination, String(perTick), String(tickMs)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout.resume(); // drained and dropped, as a log collector reads it
  let result = '';
  proc.stderr.on('data', (chunk: Buffer) => (result += chunk.toString()));
  await new Promise((resolve) => proc.once('exit', resolve));
  return result.trim();
}

if (process.argv[2] === 'child') {
  const [, , , destination, perTick, tickMs] = process.argv;
  child(destination as Destination, Number(perTick), Number(tickMs));
} else {
  const load0 = loadavg();
  const results = new Map<string, string[]>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const rate of RATES) {
      for (const destination of round % 2 === 0 ? DESTINATIONS : [...DESTINATIONS].reverse()) {
        const key = `${rate.label}|${destination}`;
        results.set(key, [...(results.get(key) ?? []), await measure(destination, rate.perTick, rate.tickMs)]);
      }
    }
  }
  const load1 = loadavg();
  process.stdout.write(
    `\nLog line cost, ${SECONDS} s per run, ${ROUNDS} rounds; load average ${load0.map((l) => l.toFixed(2)).join(' ')} ` +
      `at the start, ${load1.map((l) => l.toFixed(2)).join(' ')} at the end\n` +
      `| rate | destination | event-loop ms per line, each round |\n| --- | --- | --- |\n`,
  );
  for (const [key, values] of results) process.stdout.write(`| ${key.replace('|', ' | ')} | ${values.join(', ')} |\n`);
}
