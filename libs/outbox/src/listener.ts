import pg from 'pg';
import type { ConnectionHealth, Logger } from '@ripple/telemetry';

/** The channel the outbox trigger notifies on each insert (see sql/outbox.sql). */
export const OUTBOX_CHANNEL = 'ripple_outbox';

/**
 * Calls `onNotify` whenever a row is inserted into the outbox, from any process. On a lost
 * connection it reconnects with backoff; the relay's polling covers the gap.
 */
export function listenForOutbox(
  databaseUrl: string,
  logger: Logger,
  onNotify: () => void,
  health?: ConnectionHealth,
): { stop(): Promise<void> } {
  // Without `health`, failures are logged at every attempt.
  const failed = (err: unknown, msg: string) => (health ? health.failed(err) : logger.warn({ err }, msg));
  let client: pg.Client | undefined;
  let stopped = false;
  let retryMs = 200;
  let timer: NodeJS.Timeout | undefined;

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

  connect().catch((err: unknown) => {
    failed(err, 'outbox listener could not connect; retrying');
    schedule();
  });
  return {
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      await client?.end();
    },
  };
}
