/**
 * Why a delivery is missing: where the accepted event got to on its way (outbox row → Kafka record
 * → channel history → the client's gateway → the client), and whether it arrived late or not at
 * all. A miss must explain itself: "slow" (still moving, arrives after the wait) and "lost" (no
 * process will move it on) are different bugs.
 */

/** Where one accepted event stands, as the chaos run reads it from the platform's stores. */
export interface EventWhereabouts {
  /** Its outbox row: not relayed yet (`unsent`), acknowledged by Kafka (`sent`), or not there. */
  readonly outbox: 'unsent' | 'sent' | 'absent';
  /** Its record on the topic, and whether the gateways' group committed an offset past it. */
  readonly topic?: { readonly partition: number; readonly offset: number; readonly committed: boolean };
  /** It is on the topic's dead-letter topic (`<topic>.dlq`). */
  readonly deadLettered: boolean;
  /** Its offset in the channel's history (the Redis stream the gateways append to), if there. */
  readonly historyOffset?: string;
}

/** Reads where events are; the chaos cluster's reads its private PostgreSQL, Kafka and Redis. */
export interface WhereaboutsProbe {
  /**
   * Where each event is, by id (a post id). `events` name the channel each one goes to (its
   * history is read). Rejects when a store cannot be read.
   */
  locate(events: readonly { readonly channel: string; readonly id: string }[]): Promise<Map<string, EventWhereabouts>>;
}

/**
 * The furthest hop an event reached, in the order it travels:
 * - `not-in-outbox`: accepted (2xx) but no outbox row: lost by the service;
 * - `in-outbox`: the relay has not published it yet (slow or stuck relay);
 * - `relayed-not-on-topic`: the row is marked sent but Kafka does not hold it: lost by the
 *   producer or the broker;
 * - `on-topic`: the gateways' group has not committed past it (consumer lag);
 * - `committed-not-routed`: the group committed past it but it is not in the channel's history:
 *   lost by the gateway consumer;
 * - `dead-lettered`: a gateway gave up on it;
 * - `in-history`: appended to the channel's history, not handed to this client by its gateway.
 */
export type Stage =
  | 'not-in-outbox'
  | 'in-outbox'
  | 'relayed-not-on-topic'
  | 'on-topic'
  | 'committed-not-routed'
  | 'dead-lettered'
  | 'in-history';

/** Stages from which no process of the platform moves the event on by itself. */
export const LOST_STAGES: ReadonlySet<Stage> = new Set([
  'not-in-outbox',
  'relayed-not-on-topic',
  'committed-not-routed',
  'dead-lettered',
]);

/** The furthest hop `where` shows the event reached. */
export function stageOf(where: EventWhereabouts): Stage {
  if (where.historyOffset !== undefined) return 'in-history';
  if (where.deadLettered) return 'dead-lettered';
  if (where.topic) return where.topic.committed ? 'committed-not-routed' : 'on-topic';
  if (where.outbox === 'unsent') return 'in-outbox';
  return where.outbox === 'sent' ? 'relayed-not-on-topic' : 'not-in-outbox';
}

/** One delivery still missing when the wait ended. */
export interface Miss {
  readonly client: string;
  readonly channel: string;
  /** The event's id (post id). */
  readonly id: string;
  /** The gateway node the client was connected to last (from its `welcome`), if known. */
  readonly node?: string;
  /** How many other followers of the channel had the event by then. */
  readonly othersGotIt: number;
}

/** The explanation of a scenario's missing deliveries. */
export interface MissReport {
  /** The wait (from the end of the traffic) after which these deliveries were missing, ms. */
  readonly afterMs: number;
  readonly missing: number;
  /** Missing deliveries by the stage their event had reached then (`unknown`: the stores could not be read). */
  readonly stages: Readonly<Partial<Record<Stage | 'unknown', number>>>;
  /** Missing deliveries by the gateway node their client was on (`?`: unknown). */
  readonly nodes: Readonly<Record<string, number>>;
  /** Of those, deliveries whose event some other follower of the channel had. */
  readonly othersGotIt: number;
  /** The extra wait after `afterMs`, ms. */
  readonly extraMs: number;
  /** Deliveries made during the extra wait (slow, not lost), and the latest one's delay past `afterMs`. */
  readonly late: number;
  readonly lastLateMs: number;
  /** Deliveries still missing after the extra wait, by the stage their event had reached then. */
  readonly stillMissing: number;
  readonly stillStages: Readonly<Partial<Record<Stage | 'unknown', number>>>;
  /** A few missing deliveries in full, for a person reading the run. */
  readonly examples: readonly string[];
}

const countBy = <T>(items: readonly T[], key: (item: T) => string): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1;
  return out;
};

/**
 * Puts together what the probes saw: `misses` (missing after `afterMs`) with `before` (where their
 * events were then), `arrivedAfterMs` (client + '\n' + id → ms past `afterMs` it arrived, for
 * the ones made during the extra wait of `extraMs`) and `after` (where the events of the ones
 * still missing were at the end of it). A miss whose event `before`/`after` does not name (the
 * probe failed) is `unknown`.
 */
export function explainMisses(input: {
  readonly afterMs: number;
  readonly extraMs: number;
  readonly misses: readonly Miss[];
  readonly before: ReadonlyMap<string, EventWhereabouts>;
  readonly arrivedAfterMs: ReadonlyMap<string, number>;
  readonly after: ReadonlyMap<string, EventWhereabouts>;
}): MissReport {
  const { misses, before, after, arrivedAfterMs } = input;
  const stage = (where: ReadonlyMap<string, EventWhereabouts>, id: string): Stage | 'unknown' => {
    const found = where.get(id);
    return found ? stageOf(found) : 'unknown';
  };
  const keyOf = (m: Miss) => `${m.client}\n${m.id}`;
  const still = misses.filter((m) => !arrivedAfterMs.has(keyOf(m)));
  const lateMs = misses.flatMap((m) => arrivedAfterMs.get(keyOf(m)) ?? []);
  const examples = misses.slice(0, 5).map((m) => {
    const where = before.get(m.id);
    const arrived = arrivedAfterMs.get(keyOf(m));
    return (
      `${m.client} (node ${m.node ?? '?'}) ${m.channel} ${m.id}: ${stage(before, m.id)} ${JSON.stringify(where ?? {})}, ` +
      `${m.othersGotIt} other followers had it; ` +
      (arrived === undefined ? `still missing (${stage(after, m.id)})` : `arrived ${arrived} ms late`)
    );
  });
  return {
    afterMs: input.afterMs,
    missing: misses.length,
    stages: countBy(misses, (m) => stage(before, m.id)),
    nodes: countBy(misses, (m) => m.node ?? '?'),
    othersGotIt: misses.filter((m) => m.othersGotIt > 0).length,
    extraMs: input.extraMs,
    late: lateMs.length,
    lastLateMs: lateMs.length === 0 ? 0 : Math.max(...lateMs),
    stillMissing: still.length,
    stillStages: countBy(still, (m) => stage(after, m.id)),
    examples,
  };
}

/** One line for the verdict: where the missing deliveries were, and whether they were slow or lost. */
export function describeMisses(report: MissReport): string {
  const list = (counts: Readonly<Partial<Record<string, number>>>) =>
    Object.entries(counts)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ');
  const s = (ms: number) => `${Math.round(ms / 1000)} s`;
  const lost = Object.entries(report.stillStages)
    .filter(([stage]) => LOST_STAGES.has(stage as Stage))
    .reduce((sum, [, n]) => sum + (n ?? 0), 0);
  const verdict =
    report.stillMissing === 0
      ? `all ${report.late} arrived within ${s(report.extraMs)} more (last ${s(report.lastLateMs)} late): SLOW, not lost`
      : `${report.late} arrived within ${s(report.extraMs)} more; ${report.stillMissing} still missing (${list(report.stillStages)})` +
        (lost > 0 ? `: ${lost} LOST` : '');
  return (
    `missing after ${s(report.afterMs)}: ${list(report.stages)} (by client node: ${list(report.nodes)}; ` +
    `${report.othersGotIt} had reached another follower); ${verdict}`
  );
}
