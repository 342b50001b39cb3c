import { execFile, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { freePort, waitUntil } from '@ripple/testing';

const run = promisify(execFile);

/**
 * A PostgreSQL cluster of the chaos run's own (initdb in a temporary directory, trust auth on
 * 127.0.0.1, a free port), which it may stop and start without disturbing the shared server.
 * PostgreSQL refuses to run as root: when this process is root, initdb and postgres run as the
 * `postgres` OS user (`runuser`), in a directory that user owns.
 */
export interface PrivatePostgres {
  /** `postgresql://postgres@127.0.0.1:<port>/<database>` (the service creates its database). */
  url(database: string): string;
  readonly pid: number | undefined;
  /**
   * Stops the server (fast shutdown: open sessions end, nothing is lost), keeps it down for
   * `downMs`, starts it again on the same port and data; resolves once it takes queries.
   */
  restart(downMs: number): Promise<void>;
  /** Stops the server and removes its directory. */
  stop(): Promise<void>;
}

/** Initialises and starts the cluster; resolves once it takes queries (~5 s on 2 cores). */
export async function privatePostgres(): Promise<PrivatePostgres> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ripple-chaos-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  // Commands as the postgres OS user when we are root (initdb: "cannot be run as root").
  const as = (command: string, args: string[]): [string, string[]] =>
    asRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    chownSync(dir, Number(stdout.trim()), Number(gid.trim()));
  }
  await run(...as('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--no-sync']));
  let exited: Promise<void> = Promise.resolve();
  const start = async (): Promise<void> => {
    const [command, args] = as('postgres', [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'max_connections=200',
    ]);
    const started = spawn(command, args, { stdio: 'ignore' });
    exited = new Promise((resolve) => started.once('exit', () => resolve()));
    await waitUntil('the private PostgreSQL to take queries', 30_000, async () => {
      if (started.exitCode !== null) throw new Error(`private postgres exited with ${started.exitCode}`);
      const client = new pg.Client({ connectionString: url('postgres') });
      try {
        await client.connect();
        await client.query('SELECT 1');
        return true;
      } catch {
        return false;
      } finally {
        await client.end().catch(() => undefined);
      }
    });
  };
  // The postmaster's pid (runuser runs it as a child): signals go to it directly.
  const postmaster = (): number | undefined => {
    try {
      return Number(readFileSync(join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return undefined;
    }
  };
  const shutdown = async (): Promise<void> => {
    const pid = postmaster();
    if (pid !== undefined && pid > 0) {
      try {
        process.kill(pid, 'SIGINT'); // fast shutdown
      } catch {
        // already gone
      }
    }
    await exited;
  };
  const url = (database: string): string => `postgresql://postgres@127.0.0.1:${port}/${database}`;
  // Whatever way this process ends, the server does not outlive it (immediate shutdown).
  const onExit = (): void => {
    const pid = postmaster();
    try {
      if (pid !== undefined && pid > 0) process.kill(pid, 'SIGQUIT');
    } catch {
      // not running
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  try {
    await start();
  } catch (err) {
    process.off('exit', onExit);
    await shutdown();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    url,
    get pid() {
      return postmaster();
    },
    restart: async (downMs) => {
      await shutdown();
      await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    stop: async () => {
      process.off('exit', onExit);
      await shutdown();
      rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    },
  };
}
