import { bool, positiveInt, z } from '@sluice/config';
import { parseSinkOptions } from '@sluice/sinks-core';

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

export const postgresSinkOptionsSchema = z.strictObject({
  /** `postgres://user:password@host:5432/database`. Required. */
  url: z
    .string()
    .regex(
      /^postgres(ql)?:\/\/\S+$/,
      'must be a postgres:// URL, e.g. postgres://user@host:5432/db',
    ),
  /**
   * Schema of the tables (`telemetry_events`, `detection_events`, `detection_objects`, the views
   * `telemetry_records` and `detection_records`) and of the sink's migration table
   * `sluice_sink_postgres_migrations`: several sinks may share a database in their own schemas.
   * Created when missing. Default `public`.
   */
  schema: z
    .string()
    .regex(IDENTIFIER, 'must be a lowercase identifier (a-z, 0-9, _; at most 63)')
    .default('public'),
  /**
   * Apply pending migrations at `connect()` (under an advisory lock, so replicas apply each once).
   * `false` when a migrate job owns the schema: `connect()` then only checks that every migration is
   * applied and fails (retriably) until it is. Default `true`.
   */
  migrate: bool(true),
  /** Folder of the SQL migrations. Default the lib's `migrations` folder (found from the sources or a bundle). */
  migrationsDir: z.string().min(1).optional(),
  /** Connections of the sink's pool. Default 4. */
  poolSize: positiveInt(4),
  /** How long acquiring a connection may take before the write fails (retriably). Default 5000 ms. */
  connectionTimeoutMs: positiveInt(5_000),
  /** Server-side `statement_timeout` of every statement. Default 30000 ms. */
  statementTimeoutMs: positiveInt(30_000),
  /** Sink name (metrics label, default durable). Default `postgres`. */
  name: z
    .string()
    .regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'must be lowercase letters, digits, "_" or "-"')
    .default('postgres'),
});

/** Options of {@link PostgresSink}, as written in a config file. */
export type PostgresSinkOptions = z.input<typeof postgresSinkOptionsSchema>;
/** Options with defaults applied. */
export type ResolvedPostgresOptions = z.output<typeof postgresSinkOptionsSchema>;

/** Applies defaults and validates; throws a ConfigError naming each bad option. */
export function resolvePostgresOptions(
  options: PostgresSinkOptions,
  setting?: string,
): ResolvedPostgresOptions {
  return parseSinkOptions(postgresSinkOptionsSchema, options, setting);
}
