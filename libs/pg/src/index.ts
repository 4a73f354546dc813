export { runMigrateCommand, type MigrateCommandOptions } from './command';
export { createPool } from './pool';
export type { PgLog, PoolOptions } from './pool';
export { inTransaction, withClient } from './client';
export {
  checkMigrations,
  migrate,
  migrateDatabase,
  migrationTable,
  NO_TRANSACTION_DIRECTIVE,
  readMigrationFiles,
  resolveMigrationsDir,
} from './migrations';
export type {
  AppliedMigration,
  LegacyMigrationTable,
  MigrateOptions,
  MigrationFile,
  MigrationReport,
} from './migrations';
export { splitSqlStatements } from './sql-split';
export {
  MigrationChecksumError,
  MigrationError,
  MigrationFailedError,
  MigrationFileError,
  MigrationLockTimeoutError,
  MigrationMissingError,
  MigrationsPendingError,
  MigrationTableError,
} from './errors';
export { explainPgError, pgConnectionConfig, PgTlsError, type PgConnectionConfig } from './tls';
