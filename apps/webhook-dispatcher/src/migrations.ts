// The dispatcher's schema: the SQL files of apps/webhook-dispatcher/migrations, applied by the runner
// of @sluice/pg and recorded in `sluice_webhook_dispatcher_migrations`.
import {
  checkMigrations,
  migrate as runMigrations,
  resolveMigrationsDir,
  type LegacyMigrationTable,
  type MigrationReport,
  type PgLog,
} from '@sluice/pg';
import type { Pool } from 'pg';
import { SERVICE } from './names';

/** The advisory lock key the dispatcher has always migrated under (an older replica waits on the same). */
export const MIGRATION_LOCK = 0x5e_b4_00_01;

/** Where the dispatcher recorded its migrations before @sluice/pg (no checksums, free-text names); adopted once. */
export const LEGACY_MIGRATION_TABLE: LegacyMigrationTable = {
  table: 'webhook_schema_migrations',
  columns: { version: 'integer', name: 'text', applied_at: 'timestamp with time zone' },
  matchNames: false,
};

/** The folder of the SQL files: `dir` when given, else beside the bundle, beside the sources or under the repository root. */
export function migrationsDir(dir?: string): string {
  return resolveMigrationsDir({ app: SERVICE, from: __dirname, dir });
}

/** Applies the migrations not applied yet, under the dispatcher's advisory lock; see `migrate` of @sluice/pg. */
export function migrate(pool: Pool, log?: PgLog, dir = migrationsDir()): Promise<MigrationReport> {
  return runMigrations(pool, {
    service: SERVICE,
    dir,
    log,
    lockKey: MIGRATION_LOCK,
    legacy: [LEGACY_MIGRATION_TABLE],
  });
}

/** Fails (retriably) unless every migration is applied: the start of a replica that does not migrate. */
export function checkMigrated(
  pool: Pool,
  dir = migrationsDir(),
): Promise<{ table: string; version: number }> {
  return checkMigrations(pool, { service: SERVICE, dir });
}
