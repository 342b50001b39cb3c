import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const KAFKA_SCRIPT = fileURLToPath(new URL('../../../infra/kafka/kafka.sh', import.meta.url));

/** A TCP port that was free a moment ago (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/**
 * A Kafka broker of the test's own (infra/kafka/kafka.sh on free ports with its own data
 * directory), for tests that stop and start Kafka without disturbing the shared broker.
 * Each start costs ~5–10 s on 2 cores: start it as few times as the test needs.
 */
export interface PrivateKafka {
  /** `127.0.0.1:<port>`, for KAFKA_BROKERS. */
  readonly brokers: string;
  /**
   * Starts the broker and resolves once it answers (kafka.sh waits up to 90 s); rejects when
   * kafka.sh fails. Asynchronous: the caller's event loop (clients, servers in the same process)
   * keeps running meanwhile.
   */
  start(): Promise<void>;
  /**
   * Stops the broker (SIGTERM, then SIGKILL after 30 s) and resolves once its port is free;
   * asynchronous like `start`.
   */
  stop(): Promise<void>;
  /** The broker's process id while it runs (its pid file), else undefined. */
  pid(): number | undefined;
  /** SIGKILLs the broker's process group (a crash, not a shutdown); `start` brings it back. */
  kill(): void;
  /** Stops the broker if it runs and deletes its data directory (synchronously: for clean-up). */
  remove(): void;
}

/** Creates (does not start) a private broker; register `remove` in `t.after`/`after`. */
export async function privateKafka(): Promise<PrivateKafka> {
  const port = await freePort();
  let controllerPort = await freePort();
  while (controllerPort === port) controllerPort = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), 'ripple-kafka-test-'));
  const env = {
    ...process.env,
    KAFKA_DATA_DIR: dataDir,
    KAFKA_PORT: String(port),
    KAFKA_CONTROLLER_PORT: String(controllerPort),
    KAFKA_HEAP: process.env.KAFKA_HEAP ?? '384m',
  };
  const failed = (cmd: string, stderr: string) => new Error(`kafka.sh ${cmd} (port ${port}) failed:\n${stderr}`);
  const scriptSync = (cmd: 'stop'): void => {
    const result = spawnSync('bash', [KAFKA_SCRIPT, cmd], { env, encoding: 'utf8' });
    if (result.status !== 0) throw failed(cmd, result.stderr);
  };
  const script = (cmd: 'start' | 'stop'): Promise<void> =>
    new Promise((resolve, reject) => {
      execFile('bash', [KAFKA_SCRIPT, cmd], { env, encoding: 'utf8' }, (err, _stdout, stderr) =>
        err ? reject(failed(cmd, stderr)) : resolve(),
      );
    });
  return {
    brokers: `127.0.0.1:${port}`,
    start: () => script('start'),
    stop: () => script('stop'),
    pid() {
      try {
        return Number(readFileSync(join(dataDir, 'kafka.pid'), 'utf8'));
      } catch {
        return undefined;
      }
    },
    kill() {
      process.kill(-Number(readFileSync(join(dataDir, 'kafka.pid'), 'utf8')), 'SIGKILL');
    },
    remove() {
      try {
        scriptSync('stop');
      } finally {
        rmSync(dataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 200 });
      }
    },
  };
}
