import pg from 'pg';

function splitUrl(databaseUrl: string): { adminUrl: string; name: string } {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_]+$/.test(name)) {
    throw new Error(`database name ${JSON.stringify(name)} in DATABASE_URL must match [A-Za-z0-9_]+`);
  }
  url.pathname = '/postgres';
  return { adminUrl: url.toString(), name };
}

async function withAdmin<T>(databaseUrl: string, fn: (client: pg.Client, name: string) => Promise<T>): Promise<T> {
  const { adminUrl, name } = splitUrl(databaseUrl);
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client, name);
  } finally {
    await client.end();
  }
}

/**
 * SQLSTATEs of a CREATE DATABASE that lost the race to another session: 42P04 (duplicate_database)
 * when the other one had committed, 23505 (unique_violation on `pg_database_datname_index`) when
 * both inserted into the catalog at once.
 */
const LOST_CREATE_RACE = new Set(['42P04', '23505']);

/**
 * Creates the database named in `databaseUrl` when it does not exist. Returns true if this call
 * created it, false if it existed or another process created it at the same moment (replicas
 * starting together on a fresh server). Throws on any other PostgreSQL error.
 */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  return withAdmin(databaseUrl, async (client, name) => {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount !== 0) return false;
    try {
      await client.query(`CREATE DATABASE "${name}"`);
    } catch (err) {
      if (LOST_CREATE_RACE.has((err as { code?: string }).code ?? '')) return false;
      throw err;
    }
    return true;
  });
}

/** Drops the database named in `databaseUrl`, disconnecting its sessions (tests clean up with it). */
export async function dropDatabase(databaseUrl: string): Promise<void> {
  await withAdmin(databaseUrl, async (client, name) => {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  });
}

/** A /readyz check: resolves when the database answers a trivial query. */
export function postgresReadiness(pool: pg.Pool): () => Promise<void> {
  return async () => {
    await pool.query('SELECT 1');
  };
}
