import pg from 'pg';
import type { ConnectionHealth, Logger } from '@ripple/telemetry';

/** The channel relays LISTEN on; a writer whose own relay cannot publish NOTIFYs it. */
export const OUTBOX_CHANNEL = 'ripple_outbox';

/** Least time between two NOTIFYs of one listener, in ms (`notify` coalesces calls in between). */
export const OUTBOX_NOTIFY_INTERVAL_MS = 100;

export interface OutboxListener {
  /**
   * Wakes the relays of every process (this one included) with one `NOTIFY ripple_outbox`, sent
   * outside any request's transaction. Calls are coalesced: at most one NOTIFY per
   * {@link OUTBOX_NOTIFY_INTERVAL_MS}, and a call during the interval is answered by one NOTIFY at
   * its end, so the last call is never lost. Never throws; without a connection the relays'
   * polling covers the gap.
   */
  notify(): void;
  stop(): Promise<void>;
}

/**
 * Calls `onNotify` whenever a process NOTIFYs the outbox channel. On a lost connection it
 * reconnects with backoff; the relay's polling covers the gap.
 *
 * Why no insert trigger notifies: a transaction that NOTIFYs holds PostgreSQL's cluster-wide
 * notify lock through its commit, WAL flush included, so every writing transaction of every
 * database on the server committed one after the other (pgbench, 20 writers, 2-core machine: ~250
 * inserts/s with a per-statement NOTIFY trigger, ~2,400 without). A service wakes its own relay
 * in-process after each commit instead, and NOTIFYs (coalesced, outside the request's
 * transaction) only while that relay cannot publish, so a relay elsewhere takes the rows.
 */
export function listenForOutbox(
  databaseUrl: string,
  logger: Logger,
  onNotify: () => void,
  health?: ConnectionHealth,
): OutboxListener {
  // Without `health`, failures are logged at every attempt.
  const failed = (err: unknown, msg: string) => (health ? health.failed(err) : logger.warn({ err }, msg));
  let client: pg.Client | undefined;
  let stopped = false;
  let retryMs = 200;
  let timer: NodeJS.Timeout | undefined;
  let lastNotifyAt = Number.NEGATIVE_INFINITY;
  let notifyTimer: NodeJS.Timeout | undefined;

  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: databaseUrl });
    c.on('notification', onNotify);
    c.on('error', (err) => {
      failed(err, 'outbox listener lost its connection; reconnecting');
      void c.end().catch(() => undefined);
      schedule();
    });
    await c.connect();
    await c.query(`LISTEN ${OUTBOX_CHANNEL}`);
    if (stopped) {
      await c.end();
      return;
    }
    client = c;
    retryMs = 200;
    health?.recovered();
    onNotify(); // rows may have arrived while we were not listening
  };
  const schedule = (): void => {
    client = undefined;
    if (stopped || timer) return;
    timer = setTimeout(() => {
      timer = undefined;
      connect().catch((err: unknown) => {
        failed(err, 'outbox listener could not connect; retrying');
        schedule();
      });
    }, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  };
  const sendNotify = (): void => {
    notifyTimer = undefined;
    lastNotifyAt = performance.now();
    client?.query(`NOTIFY ${OUTBOX_CHANNEL}`).catch((err: unknown) => failed(err, 'outbox NOTIFY failed'));
  };

  connect().catch((err: unknown) => {
    failed(err, 'outbox listener could not connect; retrying');
    schedule();
  });
  return {
    notify() {
      if (stopped || notifyTimer) return;
      const wait = lastNotifyAt + OUTBOX_NOTIFY_INTERVAL_MS - performance.now();
      if (wait <= 0) sendNotify();
      else notifyTimer = setTimeout(sendNotify, wait);
    },
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (notifyTimer) clearTimeout(notifyTimer);
      await client?.end();
    },
  };
}
