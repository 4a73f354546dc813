// The watch service's schema: the SQL files of apps/watch/migrations, applied by the runner of
// @sluice/pg and recorded in `sluice_watch_migrations`.
import {
  checkMigrations,
  migrate as runMigrations,
  resolveMigrationsDir,
  type MigrationReport,
  type PgLog,
} from '@sluice/pg';
import type { Pool } from 'pg';
import { SERVICE } from './names';

export function migrationsDir(dir?: string): string {
  return resolveMigrationsDir({ app: SERVICE, from: __dirname, dir });
}

export function migrate(pool: Pool, log?: PgLog): Promise<MigrationReport> {
  return runMigrations(pool, { service: SERVICE, dir: migrationsDir(), log });
}

export function checkMigrated(pool: Pool): Promise<{ table: string; version: number }> {
  return checkMigrations(pool, { service: SERVICE, dir: migrationsDir() });
}
