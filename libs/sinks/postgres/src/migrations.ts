import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { MigrationFileError } from '@sluice/pg';

/** The owner of the sink's migrations: its table is `sluice_sink_postgres_migrations` in the sink's schema. */
export const MIGRATION_SERVICE = 'sink-postgres';

/**
 * The sink's migration folder: `dir` when given, else the lib's `migrations` (beside the sources), a
 * bundle's `migrations/sinks-postgres` (an app bundling this lib copies the folder there), or the
 * repository's `libs/sinks/postgres/migrations` under the working directory.
 */
export function migrationsDir(dir?: string): string {
  const candidates = dir
    ? [dir]
    : [
        join(__dirname, '..', 'migrations'),
        join(__dirname, 'migrations', 'sinks-postgres'),
        resolve('libs', 'sinks', 'postgres', 'migrations'),
      ];
  const found = candidates.find((c) => existsSync(join(c, '0001_export_tables.sql')));
  if (!found)
    throw new MigrationFileError(
      'sluice_sink_postgres_migrations',
      `no migrations folder of the PostgreSQL sink at ${candidates.join(', ')}; set migrationsDir`,
    );
  return found;
}
