import { describeMisses } from './diagnosis.js';
import type { Miss, MissReport } from './diagnosis.js';

/**
 * The delivery ledger of a chaos scenario: every event a domain service accepted (a 2xx), and,
 * per client, every event it received, every gap it was told about and what the REST refetch
 * after that gap returned. From it, one {@link ScenarioResult}: the figures the issue asks for.
 *
 * Events are keyed by their aggregate id (a post id: POST /posts answers it, the `post.created`
 * event carries it as `data.postId`, GET /users/:id/posts lists it), one event per id.
 */
export class Ledger {
  private readonly accepted = new Map<string, Set<string>>(); // channel -> ids
  private readonly clients = new Map<string, ClientRecord>();
  private readonly recoveriesMs: number[] = [];
  private readonly peakRss = new Map<string, number>();
  private readonly closeCodes = new Map<number, number>();
  private readonly refusals = new Map<string, number>();

  /** A domain service answered 2xx for the event `id`, which goes to `channel`. */
  accept(channel: string, id: string): void {
    let ids = this.accepted.get(channel);
    if (!ids) this.accepted.set(channel, (ids = new Set()));
    ids.add(id);
  }

  /**
   * A domain service refused a request (`status`, a non-2xx HTTP status) or could not be reached
   * (`unreachable`): nothing was accepted, so nobody is owed an event. Refusals other than 503
   * (and 429) among the 5xx are failures: an outage must be told as "retry later", not as a bug.
   */
  refused(status: number | 'unreachable'): void {
    const key = String(status);
    this.refusals.set(key, (this.refusals.get(key) ?? 0) + 1);
  }

  /** Registers a client that follows `channel`: from now on it should get every accepted event of it. */
  follow(clientId: string, channel: string): void {
    this.clients.set(clientId, { channel, received: new Map(), gaps: 0, refetched: new Set() });
  }

  /** The client's connection was welcomed by gateway node `nodeId` (the node it is on now). */
  node(clientId: string, nodeId: string): void {
    this.record(clientId).node = nodeId;
  }

  /** The client handed event `id` to its application (after its own de-duplication). */
  receive(clientId: string, id: string): void {
    const record = this.record(clientId);
    record.received.set(id, (record.received.get(id) ?? 0) + 1);
  }

  /** The client was told (`recovered: false`) that events of its channel were lost. */
  gap(clientId: string): void {
    this.record(clientId).gaps++;
  }

  /** The REST refetch that followed a gap listed these ids; they count as delivered to the client. */
  refetch(clientId: string, ids: Iterable<string>): void {
    const record = this.record(clientId);
    for (const id of ids) record.refetched.add(id);
  }

  /** A client was back (connected again) `ms` milliseconds after it lost its connection. */
  recovered(ms: number): void {
    this.recoveriesMs.push(ms);
  }

  /** A client's socket closed with WebSocket close `code` (1006: the connection was lost). */
  closed(code: number): void {
    this.closeCodes.set(code, (this.closeCodes.get(code) ?? 0) + 1);
  }

  /** A peak resident set size of a process (`name`), in bytes; the largest one per name is kept. */
  rss(name: string, bytes: number): void {
    this.peakRss.set(name, Math.max(bytes, this.peakRss.get(name) ?? 0));
  }

  /** True once every client has every accepted event of its channel, received or refetched. */
  complete(): boolean {
    return this.missing() === 0;
  }

  /** Deliveries still missing: (client, accepted event) pairs neither received nor refetched. */
  missing(): number {
    let missing = 0;
    for (const record of this.clients.values())
      for (const id of this.accepted.get(record.channel) ?? []) if (!has(record, id)) missing++;
    return missing;
  }

  /** The missing deliveries themselves, each with the client's node and how many other followers had the event. */
  misses(): Miss[] {
    const holders = new Map<string, number>(); // channel + '\n' + id -> followers that have it
    for (const record of this.clients.values())
      for (const id of this.accepted.get(record.channel) ?? [])
        if (has(record, id))
          holders.set(`${record.channel}\n${id}`, (holders.get(`${record.channel}\n${id}`) ?? 0) + 1);
    const out: Miss[] = [];
    for (const [client, record] of this.clients)
      for (const id of this.accepted.get(record.channel) ?? [])
        if (!has(record, id))
          out.push({
            client,
            channel: record.channel,
            id,
            othersGotIt: holders.get(`${record.channel}\n${id}`) ?? 0,
            ...(record.node !== undefined && { node: record.node }),
          });
    return out;
  }

  /** True when the client has event `id` (received or refetched). */
  delivered(clientId: string, id: string): boolean {
    return has(this.record(clientId), id);
  }

  /** The scenario's figures, checked against the goals. */
  result(name: string, goals: Goals = DEFAULT_GOALS): ScenarioResult {
    let expected = 0;
    let delivered = 0;
    let duplicates = 0;
    let gaps = 0;
    for (const record of this.clients.values()) {
      const ids = this.accepted.get(record.channel) ?? new Set<string>();
      expected += ids.size;
      for (const id of ids) if (has(record, id)) delivered++;
      for (const count of record.received.values()) duplicates += count - 1;
      gaps += record.gaps;
    }
    let published = 0;
    for (const ids of this.accepted.values()) published += ids.size;
    const recoveryP99Ms = percentile(this.recoveriesMs, 0.99);
    const failures: string[] = [];
    if (published === 0) failures.push('no event was accepted');
    if (delivered < expected) failures.push(missingText(expected, delivered));
    if (duplicates > 0) failures.push(`${duplicates} duplicates`);
    for (const [status, count] of this.refusals)
      if (Number(status) >= 500 && status !== '503') failures.push(`${count} requests answered ${status}, not 503`);
    if (recoveryP99Ms > goals.recoveryP99Ms)
      failures.push(`recovery p99 ${recoveryP99Ms} ms over ${goals.recoveryP99Ms} ms`);
    return {
      name,
      clients: this.clients.size,
      published,
      expected,
      delivered,
      duplicates,
      gaps,
      recoveries: this.recoveriesMs.length,
      recoveryP99Ms,
      closeCodes: Object.fromEntries(this.closeCodes),
      refused: Object.fromEntries(this.refusals),
      peakRssMb: Object.fromEntries([...this.peakRss].map(([k, v]) => [k, Math.round(v / 2 ** 20)])),
      failures,
    };
  }

  private record(clientId: string): ClientRecord {
    const record = this.clients.get(clientId);
    if (!record) throw new Error(`client ${clientId} does not follow a channel`);
    return record;
  }
}

const missingText = (expected: number, delivered: number) =>
  `${expected - delivered} of ${expected} deliveries missing`;

/**
 * `result` (figures taken when its wait ended) with `misses`, the explanation of its missing
 * deliveries (see `explainMisses`), in its figures and in its verdict.
 */
export function withMisses(result: ScenarioResult, misses: MissReport): ScenarioResult {
  const missing = missingText(result.expected, result.delivered);
  return {
    ...result,
    misses,
    failures: result.failures.map((f) => (f === missing ? `${f} (${describeMisses(misses)})` : f)),
  };
}

/** The client has event `id`: received, or listed by a refetch. */
const has = (record: ClientRecord, id: string): boolean => record.received.has(id) || record.refetched.has(id);

interface ClientRecord {
  readonly channel: string;
  /** Event id -> how many times the client's application got it. */
  readonly received: Map<string, number>;
  gaps: number;
  readonly refetched: Set<string>;
  /** The gateway node of its latest connection. */
  node?: string;
}

/** What a scenario must reach. */
export interface Goals {
  /** Largest acceptable p99 of the time from losing a connection to being connected again, ms. */
  readonly recoveryP99Ms: number;
}

/** The goals: (100% delivered and 0 duplicates always), recovery p99 ≤ 2 s. */
export const DEFAULT_GOALS: Goals = { recoveryP99Ms: 2000 };

/** One scenario's figures. Deliveries are (client, event) pairs. */
export interface ScenarioResult {
  readonly name: string;
  readonly clients: number;
  /** Events the domain service accepted (2xx). */
  readonly published: number;
  /** Deliveries owed: for each client, the accepted events of its channel. */
  readonly expected: number;
  /** Deliveries made: received, or listed by the REST refetch after a signalled gap. */
  readonly delivered: number;
  /** Events a client's application got more than once, after the client's de-duplication. */
  readonly duplicates: number;
  /** Gaps signalled to clients (`recovered: false`), each followed by a refetch. */
  readonly gaps: number;
  /** Connections lost and regained. */
  readonly recoveries: number;
  /** p99 of the time from losing a connection to being connected again, ms (0 with none). */
  readonly recoveryP99Ms: number;
  /** Client sockets closed, by WebSocket close code (why clients had to recover). */
  readonly closeCodes: Readonly<Record<string, number>>;
  /** Requests the domain service refused, by HTTP status (or `unreachable`); none of them was accepted. */
  readonly refused: Readonly<Record<string, number>>;
  /** Peak resident set size per process, MiB. */
  readonly peakRssMb: Readonly<Record<string, number>>;
  /** Where the deliveries missing at the end of the wait were, and whether they came late. */
  readonly misses?: MissReport;
  /** Every goal missed, in words; empty when the scenario met them all. */
  readonly failures: readonly string[];
}

/** The `q` quantile (0..1, nearest rank) of `values`; 0 for none. */
export function percentile(values: readonly number[], q: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
}

/**
 * The report: a table (one row per scenario, figures and verdict) and, as its last line, one
 * JSON object `{"scenarios":[{name, published, delivered, duplicates, gaps, recoveryP99Ms, …}]}`.
 */
export function formatReport(results: readonly ScenarioResult[]): string {
  const header = [
    'scenario',
    'clients',
    'published',
    'delivered',
    'dup',
    'gaps',
    'recov p99 ms',
    'closes by code',
    'refused',
    'peak RSS MiB',
    'verdict',
  ];
  const rows = results.map((r) => [
    r.name,
    String(r.clients),
    String(r.published),
    `${r.delivered}/${r.expected} (${r.expected === 0 ? '0' : ((100 * r.delivered) / r.expected).toFixed(2)}%)`,
    String(r.duplicates),
    String(r.gaps),
    String(r.recoveryP99Ms),
    Object.entries(r.closeCodes)
      .map(([k, v]) => `${k}×${v}`)
      .join(' '),
    Object.entries(r.refused)
      .map(([k, v]) => `${k}×${v}`)
      .join(' '),
    Object.entries(r.peakRssMb)
      .map(([k, v]) => `${k} ${v}`)
      .join(', '),
    r.failures.length === 0 ? 'ok' : `FAIL: ${r.failures.join('; ')}`,
  ]);
  const table = [header, ...rows].map((cells) => `| ${cells.join(' | ')} |`);
  table.splice(1, 0, `|${header.map(() => ' --- ').join('|')}|`);
  return [...table, JSON.stringify({ scenarios: results })].join('\n');
}
