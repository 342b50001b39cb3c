import type { Logger } from '@ripple/telemetry';
import type { EventProducer } from '@ripple/kafka';

export interface OutboxRecord {
  readonly id: string;
  /** Logical topic (no prefix). */
  readonly topic: string;
  readonly key: string;
  readonly value: string;
  readonly headers: Readonly<Record<string, string>>;
  /** When the service committed the row. */
  readonly createdAt: Date;
}

/** The service's outbox table, seen by the relay. */
export interface OutboxStore {
  /**
   * Claims up to `limit` unsent rows, oldest first, skipping rows another relay holds; calls
   * `publish` with them and marks them sent when it resolves. When `publish` rejects, the rows
   * stay unsent and the rejection propagates. Resolves to the number of rows published.
   */
  publishBatch(limit: number, publish: (rows: readonly OutboxRecord[]) => Promise<void>): Promise<number>;
  /**
   * Lets go of what the relay keeps between batches (a store's claim on rows, such as the shards
   * of `PgOutboxStore`), so another relay can take them at once. Called when the relay stops;
   * never rejects.
   */
  release(): Promise<void>;
}

/** What a relay reports as it goes, for load shedding (`BacklogShedder` follows it). */
export interface RelayProgressListener {
  /** A batch goes to the producer; `oldestCreatedAt` is its oldest row's `createdAt`, epoch ms. */
  sending(oldestCreatedAt: number): void;
  /** The broker acknowledged that batch. */
  acknowledged(): void;
  /** A read found no rows to publish: the relay has caught up with the rows it can take. */
  idle(): void;
  /** A read or a batch failed (Kafka or the database): the relay backs off and retries. */
  failed(): void;
}

export interface OutboxRelayOptions {
  readonly store: OutboxStore;
  readonly producer: EventProducer;
  readonly topicPrefix: string;
  readonly logger: Logger;
  readonly batchSize?: number;
  /** How often the relay looks for rows when nobody woke it. */
  readonly pollIntervalMs?: number;
  /** Upper bound of the backoff while Kafka or the database fails, in ms (default 1000: publishing resumes within about a second of Kafka answering again). */
  readonly maxBackoffMs?: number;
  /** Called after each batch the broker acknowledged (metrics). */
  readonly onPublished?: (rows: readonly OutboxRecord[]) => void;
  /** Told of each batch, acknowledgement, empty read and failure. */
  readonly progress?: RelayProgressListener;
}

export interface OutboxRelay {
  start(): void;
  /** Asks the relay to look for new rows now (after a commit that wrote to the outbox). */
  wake(): void;
  /**
   * Whether the relay publishes: started, not stopped, and its last batch did not fail. While it
   * does not, a writer should wake the relays of other processes (`OutboxListener.notify`).
   */
  active(): boolean;
  /** Finishes the batch in flight, releases the store's claim (`OutboxStore.release`) and stops. */
  stop(): Promise<void>;
}

/**
 * Moves outbox rows to Kafka: a row is marked sent only after the broker acknowledged it, so an
 * accepted write reaches Kafka even if Kafka was down when it was accepted.
 */
export function createOutboxRelay(opts: OutboxRelayOptions): OutboxRelay {
  const batchSize = opts.batchSize ?? 100;
  const pollIntervalMs = opts.pollIntervalMs ?? 1000;
  const maxBackoffMs = opts.maxBackoffMs ?? 1000;
  let running = false;
  let loop: Promise<void> | undefined;
  let wakeUp: (() => void) | undefined;
  let pendingWake = false;
  let failing = false;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (pendingWake) {
        pendingWake = false;
        resolve();
        return;
      }
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        wakeUp = undefined;
        resolve();
      }
      wakeUp = done;
    });

  const publish = async (rows: readonly OutboxRecord[]): Promise<void> => {
    opts.progress?.sending(rows.reduce((oldest, r) => Math.min(oldest, r.createdAt.getTime()), Infinity));
    await opts.producer.send(
      rows.map((r) => ({ topic: opts.topicPrefix + r.topic, key: r.key, value: r.value, headers: r.headers })),
    );
    opts.onPublished?.(rows);
    opts.progress?.acknowledged();
  };

  async function run(): Promise<void> {
    let backoff = 100;
    // Logged when publishing starts failing and when it works again, not once per retry.
    let failingSince: number | undefined;
    let failures = 0;
    while (running) {
      try {
        const count = await opts.store.publishBatch(batchSize, publish);
        backoff = 100;
        failing = false;
        if (failingSince !== undefined) {
          opts.logger.info({ downForMs: Date.now() - failingSince, failures }, 'outbox relay publishes again');
          failingSince = undefined;
          failures = 0;
        }
        if (count > 0) continue;
        opts.progress?.idle();
        await sleep(pollIntervalMs);
      } catch (err) {
        failing = true;
        opts.progress?.failed();
        failures++;
        if (failingSince === undefined) {
          failingSince = Date.now();
          opts.logger.warn({ err }, 'outbox relay cannot publish; retrying with backoff until it can');
        }
        await sleep(backoff);
        backoff = Math.min(backoff * 2, maxBackoffMs);
      }
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    wake() {
      if (wakeUp) wakeUp();
      else pendingWake = true;
    },
    active: () => running && !failing,
    async stop() {
      running = false;
      wakeUp?.();
      await loop;
      await opts.store.release();
    },
  };
}
