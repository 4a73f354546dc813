import { Pool } from 'pg';
import { pgConnectionConfig, tlsExplainingClient } from './tls';

/** What this library logs through: a pino logger fits. */
export interface PgLog {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
}

export interface PoolOptions {
  /** The service name: PostgreSQL's `application_name` (seen in `pg_stat_activity`). */
  service: string;
  /**
   * `postgres://user:password@host:port/database`, with libpq's TLS parameters when the server is
   * not on loopback: `sslmode=verify-full&sslrootcert=<ca.pem>` (and `sslcert`, `sslkey` for a
   * client certificate). Default plaintext.
   */
  url: string;
  /** The variable the URL comes from, named by errors. Default `PG_URL`. */
  variable?: string;
  /** Most connections of this pool. Default 10. */
  max?: number;
  /** How long `connect()` waits for a connection (new or freed) before it fails. Default 5000 ms. */
  connectionTimeoutMs?: number;
  /** An idle connection is closed after this long. Default 10000 ms. */
  idleTimeoutMs?: number;
  /** Receives the failures of idle clients (logged as warnings). */
  log: PgLog;
}

/**
 * A `pg` pool named after the service. Its 'error' listener logs a failed idle client and never
 * rethrows: a dropped connection must not crash the process; the pool discards the client and the
 * next query connects again. Clients checked out of the pool need {@link withClient} for the same.
 * A bad TLS parameter throws ConfigError here; a failed handshake surfaces as a PgTlsError.
 */
export function createPool(opts: PoolOptions): Pool {
  const conn = pgConnectionConfig(opts.url, opts.variable);
  const pool = new Pool({
    Client: tlsExplainingClient(conn),
    connectionString: conn.connectionString,
    ssl: conn.ssl,
    application_name: opts.service,
    max: opts.max ?? 10,
    connectionTimeoutMillis: opts.connectionTimeoutMs ?? 5_000,
    idleTimeoutMillis: opts.idleTimeoutMs ?? 10_000,
  });
  pool.on('error', (err) => opts.log.warn({ err }, 'idle PostgreSQL connection failed'));
  return pool;
}
