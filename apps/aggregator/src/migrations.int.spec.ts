import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type PgDatabase } from '@sluice/testing';
import { Pool } from 'pg';
import { migrate, migrationsDir } from './migrate';
import { logger } from './test-fixtures/harness';

describe('migration 0003 (region watermarks) on a store of the previous version', () => {
  let db: PgDatabase;
  let pool: Pool;
  let oldDir: string;

  beforeAll(async () => {
    db = await createTestDatabase('aggmig');
    pool = new Pool({ connectionString: db.url, max: 2 });
    const dir = migrationsDir();
    oldDir = mkdtempSync(join(tmpdir(), 'agg-migrations-'));
    for (const f of readdirSync(dir).filter((f) => f < '0003'))
      copyFileSync(join(dir, f), join(oldDir, f));
  });
  afterAll(async () => {
    await pool.end();
    await db.drop();
    rmSync(oldDir, { recursive: true, force: true });
  });

  it('starts every region with rows from the old global max event time, and swaps the pending index', async () => {
    await migrate(pool, oldDir, logger);
    await pool.query(`UPDATE aggregator_state SET max_event_time = '2026-01-10T12:00:00Z'`);
    await pool.query(
      `INSERT INTO series (scope, series_key, sensor, region, last_time, last_value) VALUES
         (2, 'eu', 'temp', 'eu', now(), 1), (2, 'eu', 'volt', 'eu', now(), 1), (2, 'us', 'temp', 'us', now(), 1),
         (1, 'dev-1', 'temp', 'eu', now(), 1)`,
    );

    await migrate(pool, migrationsDir(), logger);

    const { rows } = await pool.query<{
      region: string;
      max_event_time: Date;
      idle_floor: Date;
      recent: boolean;
    }>(
      `SELECT region, max_event_time, idle_floor, last_arrival > now() - interval '1 minute' AS recent FROM region_watermarks ORDER BY region`,
    );
    expect(rows).toEqual([
      {
        region: 'eu',
        max_event_time: new Date('2026-01-10T12:00:00Z'),
        idle_floor: new Date(0),
        recent: true,
      },
      {
        region: 'us',
        max_event_time: new Date('2026-01-10T12:00:00Z'),
        idle_floor: new Date(0),
        recent: true,
      },
    ]);
    const idx = await pool.query<{ indexname: string; indexdef: string }>(
      `SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'rollups' ORDER BY indexname`,
    );
    expect(idx.rows.map((r) => r.indexname)).toEqual(['rollups_pending_region', 'rollups_pkey']);
    expect(idx.rows[0]!.indexdef).toMatch(
      /\(region, window_start\) WHERE \(\(NOT closed\) OR dirty\)/,
    );
    // Applying again changes nothing.
    await migrate(pool, migrationsDir(), logger);
    expect((await pool.query('SELECT count(*)::int AS n FROM region_watermarks')).rows[0].n).toBe(
      2,
    );
  });
});

describe('an installation migrated before libs/pg (schema_migrations)', () => {
  let db: PgDatabase;
  let pool: Pool;

  beforeAll(async () => {
    db = await createTestDatabase('aggmig_old');
    pool = new Pool({ connectionString: db.url, max: 2 });
  });
  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  it('is adopted into sluice_aggregator_migrations once: nothing applied again, later files applied', async () => {
    const dir = migrationsDir();
    const old = readdirSync(dir).filter((f) => f < '0004');
    // What the old runner left: its generic table, one row per file with the file's sha256.
    await pool.query(
      'CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    for (const f of old) {
      const sql = readFileSync(join(dir, f), 'utf8');
      await pool.query(sql);
      await pool.query(
        'INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)',
        [Number(f.slice(0, 4)), f.slice(5, -4), createHash('sha256').update(sql).digest('hex')],
      );
    }

    const report = await migrate(pool, dir, logger);
    expect(report.table).toBe('sluice_aggregator_migrations');
    expect(report.adopted).toEqual({ from: 'schema_migrations', versions: [1, 2, 3] });
    const later = readdirSync(dir).filter((f) => f.endsWith('.sql') && f >= '0004');
    expect(report.applied.map((a) => a.version)).toEqual(later.map((f) => Number(f.slice(0, 4))));
    const { rows } = await pool.query<{ version: number; adopted_from: string | null }>(
      'SELECT version, adopted_from FROM sluice_aggregator_migrations ORDER BY version',
    );
    expect(
      rows.filter((r) => r.adopted_from === 'schema_migrations').map((r) => r.version),
    ).toEqual([1, 2, 3]);
    expect((await pool.query('SELECT count(*)::int AS n FROM schema_migrations')).rows[0].n).toBe(
      3,
    );
    expect((await migrate(pool, dir, logger)).applied).toEqual([]);
  });
});
