// A tiny request/response protocol over Node's IPC channel between the orchestrator and the
// processes it forks (clients, publishers, servers). Every forked process exits by itself when the
// orchestrator goes away (its IPC channel disconnects), so no process outlives a killed run.
import { fork } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

type Handler = (args: never) => unknown;
interface Request {
  id: number;
  cmd: string;
  args: unknown;
}
interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: string;
}

/** Child side: answers the orchestrator's calls with `handlers`, and exits when it goes away. */
export function serve(handlers: Record<string, Handler>): void {
  process.on('disconnect', () => process.exit(0));
  process.on('message', (msg: Request) => {
    const handler = handlers[msg.cmd];
    const reply = (r: Omit<Reply, 'id'>): void => {
      if (process.connected) process.send?.({ id: msg.id, ...r });
    };
    if (handler === undefined) {
      reply({ ok: false, error: `unknown command ${msg.cmd}` });
      return;
    }
    Promise.resolve()
      .then(() => handler(msg.args as never))
      .then(
        (value) => reply({ ok: true, value }),
        (err: unknown) => reply({ ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }),
      );
  });
}

/** Orchestrator side: a forked process whose handlers can be called and awaited. */
export class Worker {
  private next = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private exitCode: string | undefined;
  readonly exited: Promise<void>;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.on('message', (msg: Reply) => {
      const p = this.pending.get(msg.id);
      if (p === undefined) return;
      this.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(new Error(`${name}: ${msg.error ?? 'failed'}`));
    });
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.exitCode = `${code ?? signal ?? '?'}`;
        for (const p of this.pending.values()) p.reject(new Error(`${name} exited (${this.exitCode})`));
        this.pending.clear();
        resolve();
      }),
    );
  }

  static fork(name: string, script: URL, env: Record<string, string> = {}): Worker {
    const child = fork(script, [], { env: { ...process.env, ...env }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new Worker(name, child);
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  call<T>(cmd: string, args: unknown = {}, deadlineMs = 600_000): Promise<T> {
    if (this.exitCode !== undefined) return Promise.reject(new Error(`${this.name} exited (${this.exitCode})`));
    const id = this.next++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.name}: ${cmd} took longer than ${deadlineMs} ms`));
      }, deadlineMs);
      this.pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.child.send({ id, cmd, args });
    });
  }

  /** SIGKILLs the process (when still running) and waits until it is gone. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
  }
}
