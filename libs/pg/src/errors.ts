import { SluiceError } from '@sluice/errors';
import { DatabaseError } from 'pg';

/**
 * Why a service's schema could not be brought to its migration folder. Most need a person (a changed
 * or missing applied file, a malformed file name, a foreign table under the migration table's name,
 * SQL the server refused) and are not retriable; waiting out another migrator, a migrate Job still to
 * run, or a connection lost mid-migration are.
 */
export abstract class MigrationError extends SluiceError {
  /** The migration table concerned, e.g. `sluice_aggregator_migrations`. */
  abstract readonly table: string;
}

/** An applied migration file whose content changed since it was applied. */
export class MigrationChecksumError extends MigrationError {
  override readonly name = 'MigrationChecksumError';
  readonly code = 'migration_checksum_mismatch';
  constructor(
    readonly table: string,
    readonly version: number,
    readonly file: string,
    readonly appliedChecksum: string,
    readonly fileChecksum: string,
  ) {
    super(
      `migration ${file} changed after it was applied (${table} has sha256 ${appliedChecksum.slice(0, 12)}…, the file ${fileChecksum.slice(0, 12)}…): restore the file and add a new migration instead`,
    );
  }
}

/** Versions recorded as applied that have no file in the folder (an older image, or a deleted file). */
export class MigrationMissingError extends MigrationError {
  override readonly name = 'MigrationMissingError';
  readonly code = 'migration_missing';
  constructor(
    readonly table: string,
    readonly versions: readonly number[],
    readonly dir: string,
  ) {
    super(
      `${table} records version${versions.length > 1 ? 's' : ''} ${versions.join(', ')} as applied, but ${dir} has no such file: the database is newer than this build (run the newer build), or an applied file was deleted (restore it)`,
    );
  }
}

/** A file of the folder the runner cannot use: a bad name, two files of one version, no folder. */
export class MigrationFileError extends MigrationError {
  override readonly name = 'MigrationFileError';
  readonly code = 'migration_file_invalid';
  constructor(
    readonly table: string,
    message: string,
  ) {
    super(message);
  }
}

/** A table named like the migration table exists with columns the runner does not know. */
export class MigrationTableError extends MigrationError {
  override readonly name = 'MigrationTableError';
  readonly code = 'migration_table_foreign';
  constructor(
    readonly table: string,
    readonly columns: readonly string[],
  ) {
    super(
      `table ${table} exists but is not a Sluice migration table (columns: ${columns.join(', ') || 'none'}); rename it, or point the service at another database or schema`,
    );
  }
}

/**
 * A migration's SQL failed. A transactional file left nothing behind; a no-transaction file may have.
 * Retriable only when the server did not refuse the SQL (the connection failed under it).
 */
export class MigrationFailedError extends MigrationError {
  override readonly name = 'MigrationFailedError';
  readonly code = 'migration_failed';
  constructor(
    readonly table: string,
    readonly version: number,
    readonly file: string,
    detail: string,
    cause: unknown,
  ) {
    super(`migration ${file} failed: ${detail}`, {
      cause,
      retriable: !(cause instanceof DatabaseError),
    });
  }
}

/** Pending migrations while this process was told not to apply them (`<APP>_MIGRATE_ON_START=false`). */
export class MigrationsPendingError extends MigrationError {
  override readonly name = 'MigrationsPendingError';
  readonly code = 'migrations_pending';
  constructor(
    readonly table: string,
    readonly files: readonly string[],
  ) {
    // Retriable: the migrate Job applies them, and the next start succeeds.
    super(
      `${files.length} migration${files.length > 1 ? 's are' : ' is'} not applied yet (${files.join(', ')}): run the migrate command (the migrate Job) first`,
      {
        retriable: true,
      },
    );
  }
}

/** Another process held the migration lock for longer than the runner was allowed to wait. */
export class MigrationLockTimeoutError extends MigrationError {
  override readonly name = 'MigrationLockTimeoutError';
  readonly code = 'migration_lock_timeout';
  constructor(
    readonly table: string,
    readonly waitedMs: number,
    readonly holderPid: number | undefined,
  ) {
    super(
      `waited ${waitedMs} ms for the migration lock of ${table}${holderPid === undefined ? '' : ` (held by backend pid ${holderPid})`}; another replica is still migrating, or a stuck session holds the lock`,
      { retriable: true },
    );
  }
}
