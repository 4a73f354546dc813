import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isRetriable } from '@sluice/errors';
import { createTestDatabase, type PgDatabase } from '@sluice/testing';
import { Client, type Pool } from 'pg';
import {
  MigrationChecksumError,
  MigrationFailedError,
  MigrationFileError,
  MigrationLockTimeoutError,
  MigrationMissingError,
  MigrationsPendingError,
  MigrationTableError,
} from './errors';
import {
  checkMigrations,
  migrate,
  type LegacyMigrationTable,
  type MigrateOptions,
} from './migrations';
import { createPool, type PgLog } from './pool';

const quiet: PgLog = { info: () => undefined, warn: () => undefined };

/** The shape of the aggregator's table before libs/pg (apps/aggregator/src/migrate.ts). */
const OLD_AGGREGATOR: LegacyMigrationTable = {
  table: 'schema_migrations',
  columns: {
    version: 'integer',
    name: 'text',
    checksum: 'text',
    applied_at: 'timestamp with time zone',
  },
};

const FILES = {
  '0001_items.sql':
    'CREATE TABLE items (id int PRIMARY KEY, label text NOT NULL);\nCREATE TABLE effects (version int NOT NULL);\nINSERT INTO effects VALUES (1);\n',
  '0002_item_tags.sql':
    '-- tags, one row per item and tag\nCREATE TABLE item_tags (item int REFERENCES items(id), tag text);\nINSERT INTO effects VALUES (2);\n',
  '0003_items_seen.sql':
    'ALTER TABLE items ADD COLUMN seen timestamptz;\nINSERT INTO effects VALUES (3);\n',
};
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

describe('migration runner on real PostgreSQL', () => {
  let db: PgDatabase;
  let pool: Pool;
  let dir: string;
  const dbs: PgDatabase[] = [];
  const pools: Pool[] = [];

  const write = (files: Record<string, string>) => {
    for (const [name, sql] of Object.entries(files)) writeFileSync(join(dir, name), sql);
  };
  const opts = (more: Partial<MigrateOptions> = {}): MigrateOptions => ({
    service: 'spec-svc',
    dir,
    log: quiet,
    ...more,
  });
  const rows = async <T = Record<string, unknown>>(sql: string, p: Pool = pool) =>
    (await p.query(sql)).rows as T[];
  const recorded = (p: Pool = pool) =>
    rows<{ version: number; name: string; checksum: string; adopted_from: string | null }>(
      'SELECT version, name, checksum, adopted_from FROM sluice_spec_svc_migrations ORDER BY version',
      p,
    );
  const newPool = () => {
    const p = createPool({ service: 'pg-migrations-spec', url: db.url, max: 2, log: quiet });
    pools.push(p);
    return p;
  };

  beforeEach(async () => {
    db = await createTestDatabase('pgmig');
    dbs.push(db);
    pool = newPool();
    dir = mkdtempSync(join(tmpdir(), 'pg-migrations-'));
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.end()));
    await Promise.all(dbs.splice(0).map((d) => d.drop()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('applies the files in version order, once, recording version, name, checksum and duration', async () => {
    write(FILES);
    const first = await migrate(pool, opts());
    expect(first.table).toBe('sluice_spec_svc_migrations');
    expect(first.applied.map((a) => [a.version, a.name])).toEqual([
      [1, 'items'],
      [2, 'item_tags'],
      [3, 'items_seen'],
    ]);
    expect(first.version).toBe(3);
    expect(await rows('SELECT version FROM effects')).toEqual([
      { version: 1 },
      { version: 2 },
      { version: 3 },
    ]);
    const table = await rows<{
      version: number;
      name: string;
      checksum: string;
      duration_ms: number;
      adopted_from: null;
      applied_at: Date;
    }>('SELECT * FROM sluice_spec_svc_migrations ORDER BY version');
    expect(table.map((r) => [r.version, r.name, r.checksum, r.adopted_from])).toEqual([
      [1, 'items', sha(FILES['0001_items.sql']), null],
      [2, 'item_tags', sha(FILES['0002_item_tags.sql']), null],
      [3, 'items_seen', sha(FILES['0003_items_seen.sql']), null],
    ]);
    expect(
      table.every(
        (r) =>
          Number.isInteger(r.duration_ms) && r.duration_ms >= 0 && r.applied_at instanceof Date,
      ),
    ).toBe(true);

    const again = await migrate(pool, opts());
    expect(again).toEqual({
      table: 'sluice_spec_svc_migrations',
      applied: [],
      adopted: undefined,
      version: 3,
    });
    expect(await rows('SELECT * FROM sluice_spec_svc_migrations ORDER BY version')).toEqual(table);
    expect((await rows('SELECT version FROM effects')).length).toBe(3);

    // A file added later (another branch's 0004) is applied on the next start.
    write({ '0004_items_note.sql': 'ALTER TABLE items ADD COLUMN note text;' });
    expect((await migrate(pool, opts())).applied.map((a) => a.version)).toEqual([4]);
  });

  it('applies each file once when replicas with their own pools migrate at the same time', async () => {
    // pg_sleep only widens the window in which the runners overlap; a second application of any
    // file would fail (CREATE TABLE) or show in `effects`.
    // The waiting runners must not block a CREATE INDEX CONCURRENTLY of the one holding the lock.
    write({
      ...FILES,
      '0002_item_tags.sql': `SELECT pg_sleep(0.2);\n${FILES['0002_item_tags.sql']}`,
      '0004_label_index.sql':
        '-- sluice:no-transaction\nCREATE INDEX CONCURRENTLY items_label ON items (label);\nINSERT INTO effects VALUES (4);',
    });
    const runners = [pool, newPool(), newPool()];
    const reports = await Promise.all(runners.map((p) => migrate(p, opts())));
    expect(reports.flatMap((r) => r.applied.map((a) => a.version)).sort()).toEqual([1, 2, 3, 4]);
    expect(reports.map((r) => r.version)).toEqual([4, 4, 4]);
    expect(await rows('SELECT version FROM effects ORDER BY version')).toEqual(
      [1, 2, 3, 4].map((version) => ({ version })),
    );
    expect((await recorded()).map((r) => r.version)).toEqual([1, 2, 3, 4]);
  });

  it('refuses to start when an applied file changed, before applying anything', async () => {
    write(FILES);
    await migrate(pool, opts());
    write({
      '0002_item_tags.sql': `${FILES['0002_item_tags.sql']}-- edited\n`,
      '0004_more.sql': 'CREATE TABLE more (x int);',
    });
    const err = await migrate(pool, opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationChecksumError);
    expect(err).toMatchObject({
      version: 2,
      file: '0002_item_tags.sql',
      retriable: false,
      code: 'migration_checksum_mismatch',
    });
    expect((err as Error).message).toMatch(
      /^migration 0002_item_tags\.sql changed after it was applied/,
    );
    expect(await rows(`SELECT to_regclass('more') IS NULL AS absent`)).toEqual([{ absent: true }]);
    // checkMigrations (the read-only start) refuses it too.
    await expect(checkMigrations(pool, opts())).rejects.toBeInstanceOf(MigrationChecksumError);
  });

  it('refuses to start when an applied version has no file', async () => {
    write(FILES);
    await migrate(pool, opts());
    unlinkSync(join(dir, '0003_items_seen.sql'));
    const err = await migrate(pool, opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationMissingError);
    expect(err).toMatchObject({ versions: [3], retriable: false });
    expect((err as Error).message).toContain('records version 3 as applied');
  });

  it('refuses malformed file names, two files of one version and unknown directives', async () => {
    write({ '0001_items.sql': FILES['0001_items.sql'], '1_bad.sql': 'SELECT 1' });
    await expect(migrate(pool, opts())).rejects.toThrow(
      /"1_bad\.sql" .* must be named NNNN_name\.sql/,
    );
    rmSync(join(dir, '1_bad.sql'));
    write({ '0001_other.sql': 'SELECT 1' });
    await expect(migrate(pool, opts())).rejects.toThrow(
      /"0001_items\.sql" and "0001_other\.sql" share version 1/,
    );
    rmSync(join(dir, '0001_other.sql'));
    write({ '0002_typo.sql': '-- sluice:no-transactions\nSELECT 1' });
    const err = await migrate(pool, opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationFileError);
    expect((err as Error).message).toContain('unknown directive "sluice:no-transactions"');
    // Nothing ran: the files are read before the database is touched.
    expect(await rows(`SELECT to_regclass('items') IS NULL AS absent`)).toEqual([{ absent: true }]);
  });

  it('rolls a failing file back whole and says which line failed', async () => {
    write({
      '0001_items.sql': FILES['0001_items.sql'],
      '0002_broken.sql': 'CREATE TABLE fine (x int);\nCREATE TABLE broken (x no_such_type);\n',
    });
    const err = await migrate(pool, opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationFailedError);
    expect((err as Error).message).toMatch(
      /^migration 0002_broken\.sql failed: type "no_such_type" does not exist \(line 2\) \[SQLSTATE 42704\]; nothing of it was applied$/,
    );
    expect(isRetriable(err)).toBe(false);
    expect(await rows(`SELECT to_regclass('fine') IS NULL AS absent`)).toEqual([{ absent: true }]);
    expect((await recorded()).map((r) => r.version)).toEqual([1]);
  });

  it('runs a -- sluice:no-transaction file statement by statement (CREATE INDEX CONCURRENTLY)', async () => {
    write({
      '0001_items.sql': FILES['0001_items.sql'],
      '0002_items_label_index.sql':
        '-- sluice:no-transaction\n-- An index built without blocking writers.\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_label ON items (label);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_label_id ON items (label, id);\n',
    });
    const report = await migrate(pool, opts());
    expect(report.applied.map((a) => a.version)).toEqual([1, 2]);
    expect(
      await rows(
        `SELECT indexname FROM pg_indexes WHERE tablename = 'items' AND indexname LIKE 'items_label%' ORDER BY 1`,
      ),
    ).toEqual([{ indexname: 'items_label' }, { indexname: 'items_label_id' }]);
    // The same file without the directive runs in a transaction, which PostgreSQL refuses.
    write({ '0003_in_tx.sql': 'CREATE INDEX CONCURRENTLY items_id2 ON items (id);' });
    await expect(migrate(pool, opts())).rejects.toThrow(/cannot run inside a transaction block/);
  });

  it('leaves the statements before a failing no-transaction statement applied, unrecorded, and re-runs the file once fixed', async () => {
    write({
      '0001_items.sql': FILES['0001_items.sql'],
      '0002_indexes.sql':
        '-- sluice:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_label ON items (label);\nCREATE INDEX CONCURRENTLY items_nope ON items (nope);\n',
    });
    const err = await migrate(pool, opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationFailedError);
    expect((err as Error).message).toMatch(
      /statement 2 of 2: column "nope" does not exist .*the statements before it stay applied/,
    );
    expect((await recorded()).map((r) => r.version)).toEqual([1]);
    expect(
      await rows(`SELECT count(*)::int AS n FROM pg_indexes WHERE indexname = 'items_label'`),
    ).toEqual([{ n: 1 }]);
    write({
      '0002_indexes.sql':
        '-- sluice:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_label ON items (label);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_id_label ON items (id, label);\n',
    });
    expect((await migrate(pool, opts())).applied.map((a) => a.version)).toEqual([2]);
  });

  it('leaves other tools’ tables alone: Rails and golang-migrate schema_migrations, Flyway history', async () => {
    write(FILES);
    for (const [shape, ddl, insert] of [
      [
        'rails',
        'CREATE TABLE schema_migrations (version character varying NOT NULL PRIMARY KEY)',
        `INSERT INTO schema_migrations VALUES ('20240101120000'), ('20240202120000')`,
      ],
      [
        'golang-migrate',
        'CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL)',
        'INSERT INTO schema_migrations VALUES (20240101120000, false)',
      ],
    ] as const) {
      const d = await createTestDatabase(`pgmig_${shape.replace('-', '_')}`);
      dbs.push(d);
      const p = createPool({ service: 'pg-migrations-spec', url: d.url, max: 2, log: quiet });
      pools.push(p);
      await p.query(ddl);
      await p.query(insert);
      await p.query(
        `CREATE TABLE flyway_schema_history (installed_rank int PRIMARY KEY, version varchar(50), description varchar(200) NOT NULL, script varchar(1000) NOT NULL, checksum int, success boolean NOT NULL)`,
      );
      await p.query(
        `INSERT INTO flyway_schema_history VALUES (1, '1', 'init', 'V1__init.sql', 123, true)`,
      );
      const snapshot = async () => ({
        rows: await rows('SELECT * FROM schema_migrations ORDER BY version', p),
        columns: await rows(
          `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'schema_migrations' ORDER BY ordinal_position`,
          p,
        ),
        flyway: await rows('SELECT * FROM flyway_schema_history', p),
      });
      const before = await snapshot();

      const report = await migrate(p, opts({ legacy: [OLD_AGGREGATOR] }));
      expect([shape, report.adopted, report.applied.map((a) => a.version)]).toEqual([
        shape,
        undefined,
        [1, 2, 3],
      ]);
      expect(await snapshot()).toEqual(before);
      expect(await migrate(p, opts({ legacy: [OLD_AGGREGATOR] }))).toMatchObject({
        applied: [],
        version: 3,
      });
      expect(await snapshot()).toEqual(before);
    }
  });

  it('keeps two services sharing one database apart: each its own table, lock and files', async () => {
    write(FILES);
    const other = mkdtempSync(join(tmpdir(), 'pg-migrations-other-'));
    try {
      writeFileSync(join(other, '0001_other_things.sql'), 'CREATE TABLE other_things (id int);');
      const [mine, theirs] = await Promise.all([
        migrate(pool, opts()),
        migrate(newPool(), { service: 'other-svc', dir: other, log: quiet }),
      ]);
      expect([mine.version, theirs.version]).toEqual([3, 1]);
      expect(await rows('SELECT version, name FROM sluice_other_svc_migrations')).toEqual([
        { version: 1, name: 'other_things' },
      ]);
      expect((await recorded()).map((r) => r.version)).toEqual([1, 2, 3]);
      expect((await migrate(pool, opts())).applied).toEqual([]);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });

  it('refuses a foreign table under its own table name', async () => {
    write(FILES);
    await pool.query(
      'CREATE TABLE sluice_spec_svc_migrations (id serial PRIMARY KEY, script text)',
    );
    const err = await migrate(pool, opts()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationTableError);
    expect((err as Error).message).toContain('columns: id integer, script text');
  });

  it('adopts the old aggregator schema_migrations once, then applies only what is new', async () => {
    write(FILES);
    // An installation migrated by the old runner: its table, its rows, its schema.
    await pool.query(
      'CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    for (const [file, sql] of Object.entries(FILES).slice(0, 2)) {
      await pool.query(sql);
      await pool.query(
        `INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, '2026-01-0${file[3]}T00:00:00Z')`,
        [Number(file.slice(0, 4)), file.slice(5, -4), sha(sql)],
      );
    }
    const old = await rows('SELECT * FROM schema_migrations ORDER BY version');

    const report = await migrate(pool, opts({ legacy: [OLD_AGGREGATOR] }));
    expect(report.adopted).toEqual({ from: 'schema_migrations', versions: [1, 2] });
    expect(report.applied.map((a) => a.version)).toEqual([3]);
    expect(await rows('SELECT version FROM effects ORDER BY version')).toEqual([
      { version: 1 },
      { version: 2 },
      { version: 3 },
    ]);
    expect(await recorded()).toEqual([
      {
        version: 1,
        name: 'items',
        checksum: sha(FILES['0001_items.sql']),
        adopted_from: 'schema_migrations',
      },
      {
        version: 2,
        name: 'item_tags',
        checksum: sha(FILES['0002_item_tags.sql']),
        adopted_from: 'schema_migrations',
      },
      {
        version: 3,
        name: 'items_seen',
        checksum: sha(FILES['0003_items_seen.sql']),
        adopted_from: null,
      },
    ]);
    expect(
      (
        await rows<{ applied_at: Date }>(
          'SELECT applied_at FROM sluice_spec_svc_migrations WHERE version = 1',
        )
      )[0]!.applied_at,
    ).toEqual(new Date('2026-01-01T00:00:00Z'));
    expect(await rows('SELECT * FROM schema_migrations ORDER BY version')).toEqual(old);

    // Once only: a row the old table gains later is not copied again.
    await pool.query(
      `INSERT INTO schema_migrations (version, name, checksum) VALUES (9, 'later', 'x')`,
    );
    expect(await migrate(pool, opts({ legacy: [OLD_AGGREGATOR] }))).toMatchObject({
      adopted: undefined,
      applied: [],
      version: 3,
    });
  });

  it('refuses an adopted row whose file changed, as it refuses its own', async () => {
    write(FILES);
    await pool.query(
      'CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    await pool.query(FILES['0001_items.sql']);
    await pool.query(
      `INSERT INTO schema_migrations (version, name, checksum) VALUES (1, 'items', $1)`,
      [sha('the file as it was')],
    );
    await expect(migrate(pool, opts({ legacy: [OLD_AGGREGATOR] }))).rejects.toBeInstanceOf(
      MigrationChecksumError,
    );
  });

  it('leaves a Sluice-shaped table alone when its rows name other migrations', async () => {
    write(FILES);
    await pool.query(
      'CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    await pool.query(
      `INSERT INTO schema_migrations (version, name, checksum) VALUES (1, 'create_users', 'abc')`,
    );
    const report = await migrate(pool, opts({ legacy: [OLD_AGGREGATOR] }));
    expect([report.adopted, report.applied.map((a) => a.version)]).toEqual([undefined, [1, 2, 3]]);
    expect(await rows('SELECT version, name FROM schema_migrations')).toEqual([
      { version: 1, name: 'create_users' },
    ]);
  });

  it('adopts a checksum-less table (the old webhook one) with the checksums of the files as they are', async () => {
    write(FILES);
    await pool.query(
      'CREATE TABLE old_hooks_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
    );
    await pool.query(FILES['0001_items.sql']);
    await pool.query(
      `INSERT INTO old_hooks_migrations (version, name) VALUES (1, 'items and effects, free text')`,
    );
    const legacy: LegacyMigrationTable = {
      table: 'old_hooks_migrations',
      columns: { version: 'integer', name: 'text', applied_at: 'timestamp with time zone' },
      matchNames: false,
    };
    const report = await migrate(pool, opts({ legacy: [OLD_AGGREGATOR, legacy] }));
    expect(report.adopted).toEqual({ from: 'old_hooks_migrations', versions: [1] });
    expect((await recorded())[0]).toEqual({
      version: 1,
      name: 'items',
      checksum: sha(FILES['0001_items.sql']),
      adopted_from: 'old_hooks_migrations',
    });
    expect(report.applied.map((a) => a.version)).toEqual([2, 3]);
  });

  it('checkMigrations reads only: pending files are a retriable error until migrated', async () => {
    write(FILES);
    const pending = await checkMigrations(pool, opts()).catch((e: unknown) => e);
    expect(pending).toBeInstanceOf(MigrationsPendingError);
    expect(pending).toMatchObject({
      files: ['0001_items.sql', '0002_item_tags.sql', '0003_items_seen.sql'],
      retriable: true,
    });
    expect(
      await rows(`SELECT to_regclass('sluice_spec_svc_migrations') IS NULL AS absent`),
    ).toEqual([{ absent: true }]);
    await migrate(pool, opts());
    expect(await checkMigrations(pool, opts())).toEqual({
      table: 'sluice_spec_svc_migrations',
      version: 3,
    });
  });

  it('gives up waiting for a migration lock another session holds, naming it', async () => {
    write(FILES);
    const holder = new Client({ connectionString: db.url });
    await holder.connect();
    try {
      const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!
        .pid;
      await holder.query('SELECT pg_advisory_lock($1::bigint)', [424242]);
      const err = await migrate(pool, opts({ lockKey: 424242, lockWaitMs: 300 })).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(MigrationLockTimeoutError);
      expect(err).toMatchObject({ holderPid: pid, retriable: true });
      expect(
        await rows(`SELECT to_regclass('sluice_spec_svc_migrations') IS NULL AS absent`),
      ).toEqual([{ absent: true }]);
      await holder.query('SELECT pg_advisory_unlock($1::bigint)', [424242]);
      expect((await migrate(pool, opts({ lockKey: 424242, lockWaitMs: 300 }))).version).toBe(3);
    } finally {
      await holder.end();
    }
  });
});
