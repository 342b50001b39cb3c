/**
 * What the gateways say about their side of a recovery, read from their /metrics: connection
 * set-up time by phase (`gateway_connection_setup_seconds`), the registry's Redis calls made on
 * connect, and each node's event-loop delay, over a span of a chaos scenario.
 */

/** Cumulative bucket counts of one histogram series: upper bound (s, `Infinity` for +Inf) → count. */
export type Buckets = Map<number, number>;

/** One scrape of one gateway process. */
export interface GatewayScrape {
  readonly pid: number | undefined;
  /** Histogram series by `<name>{<label>="<value>"}` (the one label kept, see HISTOGRAMS). */
  readonly histograms: Map<string, Buckets>;
  /** `nodejs_eventloop_lag_max_seconds` and `_p99_seconds` (prom-client resets them per scrape), s. */
  readonly loopLagMaxS: number | undefined;
  readonly loopLagP99S: number | undefined;
}

/** The histograms read, with the label that names their series. */
const HISTOGRAMS: Record<string, string> = {
  gateway_connection_setup_seconds: 'phase',
  registry_operation_duration_seconds: 'operation',
};

/** The registry calls of a connect and a close (ConnectLog), the rest are left out of the summary. */
const CONNECT_OPERATIONS = new Set(['connects.open', 'connects.close']);

/**
 * Parses a Prometheus text exposition: the buckets of {@link HISTOGRAMS} and the event-loop
 * gauges. Lines it does not know are skipped.
 */
export function parseScrape(text: string, pid: number | undefined): GatewayScrape {
  const histograms = new Map<string, Buckets>();
  let loopLagMaxS: number | undefined;
  let loopLagP99S: number | undefined;
  for (const line of text.split('\n')) {
    const bucket = /^(\w+)_bucket\{([^}]*)\} (\S+)$/.exec(line);
    if (bucket) {
      const [, name = '', labels = '', value = ''] = bucket;
      const key = HISTOGRAMS[name];
      if (key === undefined) continue;
      const series = new RegExp(`${key}="([^"]*)"`).exec(labels)?.[1];
      const le = /le="([^"]*)"/.exec(labels)?.[1];
      if (series === undefined || le === undefined) continue;
      const id = `${name}{${key}="${series}"}`;
      const buckets = histograms.get(id) ?? new Map<number, number>();
      buckets.set(le === '+Inf' ? Infinity : Number(le), Number(value));
      histograms.set(id, buckets);
      continue;
    }
    const gauge = /^nodejs_eventloop_lag_(max|p99)_seconds(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (gauge?.[1] === 'max') loopLagMaxS = Number(gauge[2]);
    if (gauge?.[1] === 'p99') loopLagP99S = Number(gauge[2]);
  }
  return { pid, histograms, loopLagMaxS, loopLagP99S };
}

/**
 * Bucket counts of `after` minus those of `before` for the same process (same pid); a process
 * that `before` did not see (started since) counts whole. Summed over all gateways.
 */
export function histogramsBetween(
  before: readonly GatewayScrape[],
  after: readonly GatewayScrape[],
): Map<string, Buckets> {
  const sum = new Map<string, Buckets>();
  for (const now of after) {
    const then = before.find((b) => b.pid !== undefined && b.pid === now.pid);
    for (const [id, buckets] of now.histograms) {
      const into = sum.get(id) ?? new Map<number, number>();
      for (const [le, count] of buckets) {
        into.set(le, (into.get(le) ?? 0) + count - (then?.histograms.get(id)?.get(le) ?? 0));
      }
      sum.set(id, into);
    }
  }
  return sum;
}

/**
 * The `q` quantile (0 … 1) of a histogram, as the upper bound (s) of the bucket that holds it
 * (`Infinity` past the last bound); undefined when it counted nothing.
 */
export function bucketQuantile(buckets: Buckets, q: number): number | undefined {
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const total = buckets.get(Infinity) ?? 0;
  if (total <= 0) return undefined;
  for (const le of bounds) if ((buckets.get(le) ?? 0) >= q * total) return le;
  return Infinity;
}

/** Reads every gateway's /metrics (a gateway that does not answer is left out). */
export async function scrapeGateways(
  gateways: readonly { url: string; pid: number | undefined }[],
): Promise<GatewayScrape[]> {
  const scrapes = await Promise.all(
    gateways.map(async ({ url, pid }) => {
      try {
        const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
        return parseScrape(await res.text(), pid);
      } catch {
        return undefined;
      }
    }),
  );
  return scrapes.filter((s): s is GatewayScrape => s !== undefined);
}

/**
 * One line per set-up phase and connect-path registry call (count, p50 and p99 as bucket upper
 * bounds, ms) between two scrapes, then each gateway's event-loop delay at the second.
 */
export function gatewaySummary(before: readonly GatewayScrape[], after: readonly GatewayScrape[]): string {
  const lines: string[] = [];
  const ms = (s: number | undefined) =>
    s === undefined ? '-' : s === Infinity ? '>last bucket' : `≤${Math.round(s * 1000)}`;
  for (const [id, buckets] of [...histogramsBetween(before, after)].sort(([a], [b]) => a.localeCompare(b))) {
    const operation = /operation="([^"]*)"/.exec(id)?.[1];
    if (operation !== undefined && !CONNECT_OPERATIONS.has(operation)) continue;
    const count = buckets.get(Infinity) ?? 0;
    if (count === 0) continue;
    lines.push(
      `${id}: ${count} observed, p50 ${ms(bucketQuantile(buckets, 0.5))} ms, p99 ${ms(bucketQuantile(buckets, 0.99))} ms`,
    );
  }
  const lag = (s: number | undefined) => (s === undefined ? '-' : String(Math.round(s * 1000)));
  for (const s of after)
    lines.push(
      `gateway pid ${s.pid ?? '?'}: event loop delay since the previous scrape p99 ${lag(s.loopLagP99S)} ms, max ${lag(s.loopLagMaxS)} ms`,
    );
  return lines.join('\n');
}
