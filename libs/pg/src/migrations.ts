import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { DatabaseError, type Pool, type PoolClient } from 'pg';
import { withClient } from './client';
import {
  MigrationChecksumError,
  MigrationFailedError,
  MigrationFileError,
  MigrationLockTimeoutError,
  MigrationMissingError,
  MigrationsPendingError,
  MigrationTableError,
} from './errors';
import { createPool, type PgLog } from './pool';
import { splitSqlStatements } from './sql-split';

/** The first comment lines of a file may say this to run it outside a transaction, statement by statement. */
export const NO_TRANSACTION_DIRECTIVE = 'sluice:no-transaction';

/** One `NNNN_name.sql` file of a migration folder. */
export interface MigrationFile {
  version: number;
  /** `name` of `NNNN_name.sql`. */
  name: string;
  /** The file name, `NNNN_name.sql`. */
  file: string;
  sql: string;
  /** sha256 (hex) of the file's text. */
  checksum: string;
  /** False when the file starts with `-- sluice:no-transaction`. */
  transactional: boolean;
}

/**
 * An older migration table of a Sluice service, adopted into the new one once (when the new one is
 * empty). It is adopted only when it has exactly these columns, so a table of the same name that
 * belongs to another tool (Rails' `schema_migrations (version varchar)`, golang-migrate's
 * `(version bigint, dirty boolean)`, …) is never read beyond its catalog entry, nor written.
 */
export interface LegacyMigrationTable {
  /** Unqualified name, resolved through the `search_path` like the service's own tables. */
  table: string;
  /** Every column, name → type as `format_type` prints it (`integer`, `text`, `timestamp with time zone`). */
  columns: Readonly<Record<string, string>>;
  /**
   * Whether each row's `name` must equal the name of the file of its version (a further check that
   * the table is Sluice's). Default `true`; `false` for tables whose names were free text.
   */
  matchNames?: boolean;
}

export interface MigrateOptions {
  /** The service owning the schema: the table is `sluice_<service>_migrations` (`-` becomes `_`). */
  service: string;
  /** The folder of `NNNN_name.sql` files. */
  dir: string;
  /** Receives one line per adopted table, applied file and lock wait. Default none. */
  log?: PgLog;
  /**
   * Key of the session advisory lock held while migrating (other replicas wait for it). Default: a
   * key derived from the table name. Give a key shared with other DDL of the service to serialise both.
   */
  lockKey?: number;
  /** Longest wait for that lock before {@link MigrationLockTimeoutError}. Default 600000 ms (10 min). */
  lockWaitMs?: number;
  /** Older tables to adopt, tried in order, when the migration table is empty. Default none. */
  legacy?: readonly LegacyMigrationTable[];
}

export interface AppliedMigration {
  version: number;
  name: string;
  durationMs: number;
}

/** What {@link migrate} did. */
export interface MigrationReport {
  /** `sluice_<service>_migrations`. */
  table: string;
  /** Files applied by this call, in order. */
  applied: AppliedMigration[];
  /** The legacy table adopted by this call, and the versions copied from it. */
  adopted: { from: string; versions: number[] } | undefined;
  /** Highest applied version after this call (0: none). */
  version: number;
}

const FILE_NAME = /^(\d{4})_([a-z0-9_]+)\.sql$/;
const SERVICE_NAME = /^[a-z][a-z0-9_-]{0,40}$/;
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** The migration table of `service`: `sluice_<service>_migrations`, `-` replaced by `_`. */
export function migrationTable(service: string): string {
  if (!SERVICE_NAME.test(service))
    throw new MigrationFileError(
      `sluice_${service}_migrations`,
      `service name "${service}" must be lowercase letters, digits, _ or - (at most 41)`,
    );
  return `sluice_${service.replace(/-/g, '_')}_migrations`;
}

/**
 * Where an app's migration folder is: `dir` when given, else `migrations` beside the bundle (`dist/apps/
 * <app>/migrations`, copied by the build), beside the sources' parent, or under the working directory
 * (`apps/<app>/migrations`). `from` is the caller's `__dirname`.
 */
export function resolveMigrationsDir(opts: {
  app: string;
  from: string;
  dir?: string;
  variable?: string;
}): string {
  const candidates = opts.dir
    ? [opts.dir]
    : [
        join(opts.from, 'migrations'),
        join(opts.from, '..', 'migrations'),
        resolve('apps', opts.app, 'migrations'),
      ];
  const found = candidates.find((c) => existsSync(c));
  if (!found)
    throw new MigrationFileError(
      migrationTable(opts.app),
      `no migrations folder at ${candidates.join(', ')}${opts.variable ? `; set ${opts.variable}` : ''}`,
    );
  return found;
}

/** The `NNNN_name.sql` files of `dir` in version order; other files are ignored. */
export function readMigrationFiles(dir: string, table = '(migrations)'): MigrationFile[] {
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch (err) {
    throw new MigrationFileError(
      table,
      `cannot read the migrations folder ${dir}: ${(err as Error).message}`,
    );
  }
  const files: MigrationFile[] = [];
  for (const file of entries.filter((f) => f.endsWith('.sql')).sort()) {
    const m = FILE_NAME.exec(file);
    if (!m)
      throw new MigrationFileError(
        table,
        `migration file "${file}" in ${dir} must be named NNNN_name.sql (name: a-z, 0-9, _)`,
      );
    const version = Number(m[1]);
    if (version === 0)
      throw new MigrationFileError(table, `migration file "${file}": versions start at 0001`);
    const clash = files.find((f) => f.version === version);
    if (clash)
      throw new MigrationFileError(
        table,
        `migration files "${clash.file}" and "${file}" share version ${version}: renumber the newer one`,
      );
    const sql = readFileSync(join(dir, file), 'utf8');
    files.push({
      version,
      name: m[2]!,
      file,
      sql,
      checksum: createHash('sha256').update(sql).digest('hex'),
      transactional: !hasNoTransactionDirective(file, sql, table),
    });
  }
  return files;
}

/** Reads the `-- sluice:…` directives of the leading comment lines; an unknown one is an error (a typo would silently change behaviour). */
function hasNoTransactionDirective(file: string, sql: string, table: string): boolean {
  let found = false;
  for (const raw of sql.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    if (!line.startsWith('--')) break;
    const d = /^--\s*(sluice:\S*)\s*$/.exec(line);
    if (!d) continue;
    if (d[1] !== NO_TRANSACTION_DIRECTIVE)
      throw new MigrationFileError(
        table,
        `migration file "${file}": unknown directive "${d[1]}" (known: ${NO_TRANSACTION_DIRECTIVE})`,
      );
    found = true;
  }
  return found;
}

const TABLE_COLUMNS: Readonly<Record<string, string>> = {
  version: 'integer',
  name: 'text',
  checksum: 'text',
  applied_at: 'timestamp with time zone',
  duration_ms: 'integer',
  adopted_from: 'text',
};

/** Columns of `table` (resolved through the search_path), or undefined when there is no such table. */
async function columnsOf(c: PoolClient, table: string): Promise<Map<string, string> | undefined> {
  const rel = await c.query<{ oid: string | null }>('SELECT to_regclass($1)::oid AS oid', [table]);
  const oid = rel.rows[0]?.oid;
  if (oid == null) return undefined;
  const cols = await c.query<{ name: string; type: string }>(
    'SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum',
    [oid],
  );
  return new Map(cols.rows.map((r) => [r.name, r.type]));
}

/** Creates the migration table, or checks that the existing one is a Sluice migration table. */
async function ensureTable(c: PoolClient, table: string): Promise<void> {
  const cols = await columnsOf(c, table);
  if (cols === undefined) {
    await c.query(`CREATE TABLE ${table} (
      version integer PRIMARY KEY,
      name text NOT NULL,
      checksum text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now(),
      duration_ms integer,
      adopted_from text
    )`);
    await c.query(
      `COMMENT ON TABLE ${table} IS 'Sluice: SQL migration files applied to this database (libs/pg)'`,
    );
    return;
  }
  assertShape(table, cols);
}

function assertShape(table: string, cols: Map<string, string>): void {
  // Extra columns are tolerated (a later Sluice may add some); these must be there as they are.
  if (Object.entries(TABLE_COLUMNS).some(([name, type]) => cols.get(name) !== type))
    throw new MigrationTableError(
      table,
      [...cols].map(([n, t]) => `${n} ${t}`),
    );
}

function sameShape(cols: Map<string, string>, expected: Readonly<Record<string, string>>): boolean {
  const want = Object.entries(expected);
  return cols.size === want.length && want.every(([name, type]) => cols.get(name) === type);
}

/** Copies the rows of the first legacy table that is Sluice's into the empty migration table. */
async function adoptLegacy(
  c: PoolClient,
  table: string,
  files: readonly MigrationFile[],
  legacy: readonly LegacyMigrationTable[],
  log: PgLog | undefined,
): Promise<MigrationReport['adopted']> {
  if (legacy.length === 0) return undefined;
  if ((await c.query(`SELECT 1 FROM ${table} LIMIT 1`)).rowCount !== 0) return undefined;
  const byVersion = new Map(files.map((f) => [f.version, f]));
  for (const l of legacy) {
    if (!IDENTIFIER.test(l.table))
      throw new MigrationFileError(
        table,
        `legacy migration table "${l.table}" is not a plain lowercase identifier`,
      );
    const cols = await columnsOf(c, l.table);
    if (cols === undefined) continue;
    if (!sameShape(cols, l.columns)) {
      log?.info(
        { table: l.table, columns: [...cols.keys()] },
        'a table named like an old Sluice migration table belongs to another tool; left alone',
      );
      continue;
    }
    const withChecksum = cols.has('checksum');
    const { rows } = await c.query<{
      version: number;
      name: string;
      checksum?: string;
      applied_at: Date;
    }>(
      `SELECT version, name, ${withChecksum ? 'checksum, ' : ''}applied_at FROM ${l.table} ORDER BY version`,
    );
    if (rows.length === 0) continue;
    if (
      (l.matchNames ?? true) &&
      rows.some((r) => byVersion.has(r.version) && byVersion.get(r.version)!.name !== r.name)
    ) {
      log?.info(
        { table: l.table },
        'a table shaped like an old Sluice migration table names other migrations; left alone',
      );
      continue;
    }
    await c.query('BEGIN');
    try {
      for (const r of rows) {
        // Without a recorded checksum, the file's is taken as it is now (trust on adoption).
        const checksum = r.checksum ?? byVersion.get(r.version)?.checksum ?? '';
        await c.query(
          `INSERT INTO ${table} (version, name, checksum, applied_at, adopted_from) VALUES ($1, $2, $3, $4, $5)`,
          [r.version, byVersion.get(r.version)?.name ?? r.name, checksum, r.applied_at, l.table],
        );
      }
      await c.query('COMMIT');
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    const versions = rows.map((r) => r.version);
    log?.info(
      { from: l.table, to: table, versions },
      'adopted the applied migrations of the old migration table (it is left in place)',
    );
    return { from: l.table, versions };
  }
  return undefined;
}

interface AppliedRow {
  version: number;
  checksum: string;
}

/** Throws when an applied version has no file, or its file changed. */
function verifyApplied(
  table: string,
  dir: string,
  files: readonly MigrationFile[],
  applied: readonly AppliedRow[],
): void {
  const byVersion = new Map(files.map((f) => [f.version, f]));
  const missing = applied.filter((r) => !byVersion.has(r.version)).map((r) => r.version);
  if (missing.length > 0) throw new MigrationMissingError(table, missing, dir);
  for (const r of applied) {
    const f = byVersion.get(r.version)!;
    if (f.checksum !== r.checksum)
      throw new MigrationChecksumError(table, r.version, f.file, r.checksum, f.checksum);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Takes the session advisory lock by polling `pg_try_advisory_lock` (backing off to 1 s), not by a
 * blocking `pg_advisory_lock`: a waiter blocked in a statement holds a snapshot, which a
 * `CREATE INDEX CONCURRENTLY` of the lock holder would wait for — a deadlock.
 */
async function acquireLock(
  c: PoolClient,
  table: string,
  key: number,
  waitMs: number,
  log: PgLog | undefined,
): Promise<void> {
  const started = Date.now();
  let delay = 50;
  let announced = false;
  for (;;) {
    const { rows } = await c.query<{ ok: boolean }>(
      'SELECT pg_try_advisory_lock($1::bigint) AS ok',
      [key],
    );
    if (rows[0]!.ok) return;
    const waited = Date.now() - started;
    if (waited >= waitMs)
      throw new MigrationLockTimeoutError(table, waited, await lockHolder(c, key));
    if (!announced) {
      announced = true;
      log?.info(
        { table, holderPid: await lockHolder(c, key) },
        'another process is migrating; waiting for the migration lock',
      );
    }
    await sleep(Math.min(delay, waitMs - waited));
    delay = Math.min(delay * 2, 1_000);
  }
}

async function lockHolder(c: PoolClient, key: number): Promise<number | undefined> {
  const { rows } = await c
    .query<{ pid: number }>(
      `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
         AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid LIMIT 1`,
      [key],
    )
    .catch(() => ({ rows: [] as Array<{ pid: number }> }));
  return rows[0]?.pid;
}

/** A stable lock key per table: the first 48 bits of its sha256. */
function defaultLockKey(table: string): number {
  return createHash('sha256').update(`sluice-migrations:${table}`).digest().readUIntBE(0, 6);
}

/** The server's words for a failed statement, with the line of the file it points at. */
function describe(err: unknown, sql: string): string {
  if (!(err instanceof DatabaseError)) return (err as Error)?.message ?? String(err);
  const pos = Number(err.position);
  const line =
    Number.isInteger(pos) && pos > 0 ? ` (line ${sql.slice(0, pos).split('\n').length})` : '';
  return `${err.message}${line}${err.code ? ` [SQLSTATE ${err.code}]` : ''}`;
}

/**
 * Applies the files of `opts.dir` that `sluice_<service>_migrations` does not list yet, in version
 * order, each in its own transaction together with its row (a `-- sluice:no-transaction` file: its
 * statements one by one, then its row), under a session advisory lock so that replicas starting
 * together apply each file once — the others wait, then find nothing left to do.
 *
 * Before applying anything it refuses, with a typed error, an applied version whose file is gone
 * ({@link MigrationMissingError}) or changed ({@link MigrationChecksumError}). When the table is
 * empty, the rows of the first Sluice-shaped `opts.legacy` table are copied in first (adoption of an
 * installation migrated by an older Sluice); no other table is ever read or written.
 */
export async function migrate(pool: Pool, opts: MigrateOptions): Promise<MigrationReport> {
  const table = migrationTable(opts.service);
  const files = readMigrationFiles(opts.dir, table);
  const log = opts.log;
  return withClient(pool, async (c) => {
    await acquireLock(
      c,
      table,
      opts.lockKey ?? defaultLockKey(table),
      opts.lockWaitMs ?? 600_000,
      log,
    );
    try {
      await ensureTable(c, table);
      const adopted = await adoptLegacy(c, table, files, opts.legacy ?? [], log);
      const done = (
        await c.query<AppliedRow>(`SELECT version, checksum FROM ${table} ORDER BY version`)
      ).rows;
      verifyApplied(table, opts.dir, files, done);
      const doneVersions = new Set(done.map((r) => r.version));
      let top = done.reduce((m, r) => Math.max(m, r.version), 0);
      const applied: AppliedMigration[] = [];
      for (const f of files) {
        if (doneVersions.has(f.version)) continue;
        if (f.version < top)
          log?.warn(
            { version: f.version, migration: f.name, applied: top },
            'applying a migration numbered below one already applied',
          );
        const durationMs = await apply(c, table, f);
        applied.push({ version: f.version, name: f.name, durationMs });
        top = Math.max(top, f.version);
        log?.info(
          {
            table,
            version: f.version,
            migration: f.name,
            durationMs,
            transactional: f.transactional,
          },
          'migration applied',
        );
      }
      return { table, applied, adopted, version: top };
    } finally {
      await c
        .query('SELECT pg_advisory_unlock($1::bigint)', [opts.lockKey ?? defaultLockKey(table)])
        .catch(() => undefined);
    }
  });
}

async function apply(c: PoolClient, table: string, f: MigrationFile): Promise<number> {
  const record = (ms: number) =>
    c.query(`INSERT INTO ${table} (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)`, [
      f.version,
      f.name,
      f.checksum,
      ms,
    ]);
  const started = performance.now();
  if (f.transactional) {
    await c.query('BEGIN');
    try {
      await c.query(f.sql);
      const ms = Math.round(performance.now() - started);
      await record(ms);
      await c.query('COMMIT');
      return ms;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw new MigrationFailedError(
        table,
        f.version,
        f.file,
        `${describe(err, f.sql)}; nothing of it was applied`,
        err,
      );
    }
  }
  const statements = splitSqlStatements(f.sql);
  for (let i = 0; i < statements.length; i++) {
    try {
      await c.query(statements[i]!);
    } catch (err) {
      throw new MigrationFailedError(
        table,
        f.version,
        f.file,
        `statement ${i + 1} of ${statements.length}: ${describe(err, statements[i]!)}; it runs outside a transaction, so the statements before it stay applied and the file runs again from its start next time (it must be safe to re-run: IF NOT EXISTS, …)`,
        err,
      );
    }
  }
  const ms = Math.round(performance.now() - started);
  await record(ms);
  return ms;
}

/**
 * Reads, never writes: throws {@link MigrationsPendingError} (retriable) when some file of the folder
 * is not applied yet, and the errors of {@link migrate} for a missing or changed applied file. For a
 * service told not to migrate on start, whose schema a migrate Job owns.
 */
export async function checkMigrations(
  pool: Pool,
  opts: Pick<MigrateOptions, 'service' | 'dir'>,
): Promise<{ table: string; version: number }> {
  const table = migrationTable(opts.service);
  const files = readMigrationFiles(opts.dir, table);
  return withClient(pool, async (c) => {
    const cols = await columnsOf(c, table);
    if (cols !== undefined) assertShape(table, cols);
    const done =
      cols === undefined
        ? []
        : (await c.query<AppliedRow>(`SELECT version, checksum FROM ${table} ORDER BY version`))
            .rows;
    verifyApplied(table, opts.dir, files, done);
    const doneVersions = new Set(done.map((r) => r.version));
    const pending = files.filter((f) => !doneVersions.has(f.version));
    if (pending.length > 0)
      throw new MigrationsPendingError(
        table,
        pending.map((f) => f.file),
      );
    return { table, version: done.reduce((m, r) => Math.max(m, r.version), 0) };
  });
}

/**
 * The body of a service's `migrate` command: a one-connection pool named `<service>-migrate`,
 * {@link migrate}, the pool closed whatever happened.
 */
export async function migrateDatabase(
  opts: MigrateOptions & { url: string; connectionTimeoutMs?: number },
): Promise<MigrationReport> {
  const noop = { info: () => undefined, warn: () => undefined };
  const pool = createPool({
    service: `${opts.service}-migrate`,
    url: opts.url,
    max: 1,
    connectionTimeoutMs: opts.connectionTimeoutMs,
    log: opts.log ?? noop,
  });
  try {
    return await migrate(pool, opts);
  } finally {
    await pool.end();
  }
}
