import {
  checkMigrations,
  migrate as runMigrations,
  resolveMigrationsDir,
  type LegacyMigrationTable,
  type MigrationReport,
  type PgLog,
} from '@sluice/pg';
import type { Pool } from 'pg';

/** The service owning the schema: its migrations are recorded in `sluice_aggregator_migrations`. */
const SERVICE = 'aggregator';

/** Advisory lock key serialising migrations and partition DDL across replicas. */
export const DDL_LOCK = 0x51cea66;

/** The table the aggregator recorded its migrations in before libs/pg, adopted once. */
export const LEGACY_MIGRATION_TABLE: LegacyMigrationTable = {
  table: 'schema_migrations',
  columns: {
    version: 'integer',
    name: 'text',
    checksum: 'text',
    applied_at: 'timestamp with time zone',
  },
};

/**
 * Where the versioned SQL files are: `dir` when given, else beside the bundle (`dist/apps/aggregator/
 * migrations`, copied by the build), beside the sources, or under the repository root.
 */
export function migrationsDir(dir?: string): string {
  return resolveMigrationsDir({
    app: SERVICE,
    from: __dirname,
    dir,
    variable: 'AGGREGATOR_MIGRATIONS_DIR',
  });
}

/**
 * Applies the SQL files of `dir` not applied yet (see `migrate` of @sluice/pg): recorded in
 * `sluice_aggregator_migrations`, under {@link DDL_LOCK}; the old `schema_migrations` rows are adopted
 * once. Returns what was done.
 */
export function migrate(pool: Pool, dir: string, log?: PgLog): Promise<MigrationReport> {
  return runMigrations(pool, {
    service: SERVICE,
    dir,
    log,
    lockKey: DDL_LOCK,
    legacy: [LEGACY_MIGRATION_TABLE],
  });
}

/** Fails (retriably) unless every file of `dir` is applied: the start of a replica that does not migrate. */
export function checkMigrated(
  pool: Pool,
  dir: string,
): Promise<{ table: string; version: number }> {
  return checkMigrations(pool, { service: SERVICE, dir });
}
