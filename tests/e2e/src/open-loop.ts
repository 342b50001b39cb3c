import { Pool } from 'undici';

export interface OpenLoopOptions {
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  /**
   * Request i's own headers and body instead of `headers` and `body`; `dueAtMs` is its due time
   * on the wall clock (ms since the epoch), e.g. to stamp it into the body.
   */
  readonly each?: (i: number, dueAtMs: number) => { headers: Record<string, string>; body: string };
  /** Called with request i's status once it is answered. */
  readonly onAnswer?: (i: number, status: number) => void;
  /** Requests per second, spread evenly: request i is due at start + i / rate. */
  readonly rate: number;
  /** Keep-alive connections; a request due while all are busy waits for one (and that wait counts). */
  readonly connections: number;
  readonly seconds: number;
  /** A request not answered this long after it was sent counts as a timeout, in ms. */
  readonly timeoutMs: number;
}

export interface OpenLoopResult {
  /** Requests answered (any status). */
  readonly answered: number;
  /** Per answered request: from its due time to the end of its answer, in ms (sorted). */
  readonly latenciesMs: readonly number[];
  readonly statuses: ReadonlyMap<number, number>;
  readonly errors: number;
  readonly timeouts: number;
  /** Wall time from the first due time to the last answer, in s. */
  readonly elapsedSeconds: number;
}

/**
 * A true open loop: requests are due at a fixed rate whatever the server does, and latency counts
 * from the due time, so a server (or a client) that falls behind shows up in the latency instead
 * of slowing the load down (coordinated omission). autocannon's `overallRate` is not that: it
 * caps each connection at rate/connections requests per second and sends them back to back at
 * the start of each second (a burst of the whole second's requests from every connection at
 * once), then corrects its histogram with a 1 ms expected interval, which adds L − 1 synthetic
 * samples for every answer of L ms.
 */
export async function openLoop(opts: OpenLoopOptions): Promise<OpenLoopResult> {
  const target = new URL(opts.url);
  const pool = new Pool(target.origin, {
    connections: opts.connections,
    pipelining: 1,
    headersTimeout: opts.timeoutMs,
    bodyTimeout: opts.timeoutMs,
  });
  const total = Math.round(opts.rate * opts.seconds);
  const intervalMs = 1000 / opts.rate;
  const latencies: number[] = [];
  const statuses = new Map<number, number>();
  let errors = 0;
  let timeouts = 0;
  const inFlight = new Set<Promise<void>>();
  const send = (i: number, dueAt: number): void => {
    const { headers, body } = opts.each?.(i, performance.timeOrigin + dueAt) ?? opts;
    const request = pool
      .request({ path: target.pathname + target.search, method: 'POST', headers, body })
      .then(async (res) => {
        await res.body.dump();
        latencies.push(performance.now() - dueAt);
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        opts.onAnswer?.(i, res.statusCode);
      })
      .catch((err: unknown) => {
        const code = (err as { code?: string }).code;
        if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') timeouts++;
        else errors++;
      })
      .finally(() => inFlight.delete(request));
    inFlight.add(request);
  };

  const start = performance.now();
  let next = 0;
  await new Promise<void>((resolve) => {
    // Each tick sends every request due by now, at its own due time (a late tick is the client's
    // delay and is counted as such).
    const timer = setInterval(() => {
      const now = performance.now();
      for (; next < total && start + next * intervalMs <= now; next++) send(next, start + next * intervalMs);
      if (next >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 1);
  });
  while (inFlight.size > 0) await Promise.all(inFlight);
  const elapsedSeconds = (performance.now() - start) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  return { answered: latencies.length, latenciesMs: latencies, statuses, errors, timeouts, elapsedSeconds };
}

/** The `p` quantile (0–1, nearest rank) of `result`'s latencies, in ms; NaN when nothing was answered. */
export function latencyAt(result: OpenLoopResult, p: number): number {
  return result.latenciesMs[Math.min(result.answered - 1, Math.floor(p * result.answered))] ?? Number.NaN;
}
