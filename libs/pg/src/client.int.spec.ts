import { createTestDatabase, testUrls, waitFor, type PgDatabase } from '@sluice/testing';
import { Client, type Pool } from 'pg';
import { inTransaction, withClient } from './client';
import { createPool, type PgLog } from './pool';

function captureLog(): PgLog & { warnings: Array<{ fields: object; msg: string }> } {
  const warnings: Array<{ fields: object; msg: string }> = [];
  return {
    warnings,
    info: () => undefined,
    warn: (fields, msg) => void warnings.push({ fields, msg }),
  };
}

describe('pool and clients on real PostgreSQL', () => {
  let db: PgDatabase;
  let admin: Client;
  let pool: Pool;
  let log: ReturnType<typeof captureLog>;

  beforeAll(async () => {
    db = await createTestDatabase('pgclient');
    admin = new Client({ connectionString: testUrls.postgres });
    await admin.connect();
  });
  beforeEach(() => {
    log = captureLog();
    pool = createPool({ service: 'pg-spec', url: db.url, max: 2, log });
  });
  afterEach(async () => {
    await pool.end();
  });
  afterAll(async () => {
    await admin.end();
    await db.drop();
  });

  const terminate = (pid: number) => admin.query('SELECT pg_terminate_backend($1)', [pid]);
  const backendPid = async (q: Pool | Client | { query: Client['query'] }) =>
    (await (q as Client).query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

  it('names its connections after the service', async () => {
    const pid = await backendPid(pool);
    const { rows } = await admin.query<{ application_name: string }>(
      'SELECT application_name FROM pg_stat_activity WHERE pid = $1',
      [pid],
    );
    expect(rows).toEqual([{ application_name: 'pg-spec' }]);
  });

  it('destroys a checked-out client whose backend is terminated mid-withClient, instead of returning it', async () => {
    let pid = 0;
    const out = await withClient(pool, async (c) => {
      pid = await backendPid(c);
      await terminate(pid);
      // The checked-out client learns of it between two queries, as an 'error' event: with no listener
      // of withClient's on it, that event would be an uncaught exception and fail this test.
      // (`_queryable` is the flag pg-pool itself reads.)
      await waitFor(
        'the client to see its connection end',
        () => !(c as unknown as { _queryable: boolean })._queryable,
      );
      return 'done';
    });
    expect(out).toBe('done');
    expect(pool.totalCount).toBe(0);
    // The pool hands out a fresh connection next.
    expect(await backendPid(pool)).not.toBe(pid);
  });

  it('destroys the client when its query fails because the backend went away, and rethrows', async () => {
    let pid = 0;
    await expect(
      withClient(pool, async (c) => {
        pid = await backendPid(c);
        await terminate(pid);
        await c.query('SELECT 1');
      }),
    ).rejects.toThrow();
    expect(pool.totalCount).toBe(0);
    expect(await backendPid(pool)).not.toBe(pid);
  });

  it('returns a healthy client to the pool', async () => {
    const pid = await withClient(pool, (c) => backendPid(c));
    expect([pool.totalCount, pool.idleCount]).toEqual([1, 1]);
    expect(await withClient(pool, (c) => backendPid(c))).toBe(pid);
  });

  it('logs a failed idle client and keeps serving', async () => {
    const pid = await withClient(pool, (c) => backendPid(c));
    await terminate(pid);
    await waitFor('the idle client failure to be logged', () => log.warnings.length > 0);
    expect(log.warnings[0]!.msg).toBe('idle PostgreSQL connection failed');
    expect((await pool.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('commits inTransaction, and rolls back (destroying the client) when fn throws', async () => {
    await pool.query('CREATE TABLE IF NOT EXISTS tx_spec (x int)');
    await inTransaction(pool, (c) => c.query('INSERT INTO tx_spec VALUES (1)'));
    await expect(
      inTransaction(pool, async (c) => {
        await c.query('INSERT INTO tx_spec VALUES (2)');
        throw new Error('no');
      }),
    ).rejects.toThrow('no');
    expect(pool.totalCount).toBe(0);
    expect((await pool.query('SELECT x FROM tx_spec ORDER BY x')).rows).toEqual([{ x: 1 }]);
  });
});
