import type { Logger } from '@ripple/telemetry';
import { MessageTooLargeError } from '@ripple/kafka';
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

/**
 * Rows a relay's `publish` set aside unpublished because the broker can never take them (one
 * record over the bound of a produce request): their ids, and the error code of why
 * (`KAFKA_MESSAGE_TOO_LARGE`).
 */
export interface SetAside {
  readonly ids: readonly string[];
  readonly code: string;
}

/** The service's outbox table, seen by the relay. */
export interface OutboxStore {
  /**
   * Claims up to `limit` unsent rows, oldest first, skipping rows another relay holds; calls
   * `publish` with them and marks them sent when it resolves, those it handed to `setAside` (rows
   * it did not publish because the broker can never take them) refused with their code as well
   * (the `refused` column). When `publish` rejects, the rows stay unsent and the rejection
   * propagates. Resolves to the number of rows handled.
   */
  publishBatch(
    limit: number,
    publish: (rows: readonly OutboxRecord[], setAside: (refused: SetAside) => void) => Promise<void>,
  ): Promise<number>;
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
  /** Called after each batch the broker acknowledged (metrics), with the rows it published. */
  readonly onPublished?: (rows: readonly OutboxRecord[]) => void;
  /**
   * Called with the rows of a batch the relay set aside unpublished (each alone over the
   * producer's request bound: `MessageTooLargeError`), once the broker acknowledged the others.
   */
  readonly onRefused?: (rows: readonly OutboxRecord[]) => void;
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
 * accepted write reaches Kafka even if Kafka was down when it was accepted. A batch larger than a
 * produce request may be goes out in several requests (`EventProducer.send`) and is marked once
 * all were acknowledged: a failure or crash between them publishes the acknowledged ones again
 * (at least once), never loses or reorders a row. A row the broker can never take (alone over the
 * producer's request bound) is set aside (`SetAside`: marked sent and refused, logged as an error,
 * `onRefused`) so that the rows behind it go on.
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

  const send = (rows: readonly OutboxRecord[]) =>
    opts.producer.send(
      rows.map((r) => ({ topic: opts.topicPrefix + r.topic, key: r.key, value: r.value, headers: r.headers })),
    );
  /** The batch this attempt publishes, for the log when it fails; undefined while the store reads. */
  let batch: { firstId?: string; lastId?: string; rows: number } | undefined;

  const publish = async (rows: readonly OutboxRecord[], setAside: (refused: SetAside) => void): Promise<void> => {
    batch = { firstId: rows[0]?.id, lastId: rows[rows.length - 1]?.id, rows: rows.length };
    opts.progress?.sending(rows.reduce((oldest, r) => Math.min(oldest, r.createdAt.getTime()), Infinity));
    let published = rows;
    try {
      await send(rows);
    } catch (err) {
      if (!(err instanceof MessageTooLargeError)) throw err;
      // The broker can never take these rows: publish the others, and have the store mark them.
      const tooLarge = new Map(err.oversized.map((o) => [o.index, o.bytes]));
      published = rows.filter((_, i) => !tooLarge.has(i));
      if (!err.othersSent) await send(published);
      const refused = rows.filter((_, i) => tooLarge.has(i));
      for (const [index, bytes] of tooLarge) {
        const r = rows[index];
        opts.logger.error(
          { outboxId: r?.id, eventId: r?.headers.ce_id, topic: r?.topic, key: r?.key, bytes, limit: err.limit },
          'outbox row too large for Kafka: set aside unpublished (outbox.refused = KAFKA_MESSAGE_TOO_LARGE); the rows behind it go on',
        );
      }
      setAside({ ids: refused.map((r) => r.id), code: err.code });
      opts.onRefused?.(refused);
    }
    opts.onPublished?.(published);
    opts.progress?.acknowledged();
  };

  async function run(): Promise<void> {
    let backoff = 100;
    // Logged when publishing starts failing and when it works again, not once per retry.
    let failingSince: number | undefined;
    let failures = 0;
    let reportAt = 10;
    while (running) {
      try {
        batch = undefined;
        const count = await opts.store.publishBatch(batchSize, publish);
        backoff = 100;
        failing = false;
        if (failingSince !== undefined) {
          opts.logger.info({ downForMs: Date.now() - failingSince, failures }, 'outbox relay publishes again');
          failingSince = undefined;
          failures = 0;
          reportAt = 10;
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
          opts.logger.warn({ err, batch }, 'outbox relay cannot publish; retrying with backoff until it can');
        } else if (failures === reportAt) {
          reportAt *= 10;
          // 10, 100, 1000… failures in a row: which rows it keeps failing on, and why, stays in view.
          opts.logger.warn(
            { err, batch, failures, downForMs: Date.now() - failingSince },
            'outbox relay still cannot publish; retrying with backoff until it can',
          );
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
