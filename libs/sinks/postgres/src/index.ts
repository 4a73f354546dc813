// Public API of @sluice/sinks-postgres. Test schemas are behind `@sluice/sinks-postgres/testing`.
export { isRetriablePgError, isRowError, PgTransientError, RowRejectedError } from './errors';
export { MIGRATION_SERVICE, migrationsDir } from './migrations';
export {
  postgresSinkOptionsSchema,
  resolvePostgresOptions,
  type PostgresSinkOptions,
  type ResolvedPostgresOptions,
} from './options';
export { PostgresSink } from './sink';
