import {
  ConfigError,
  parsePgTls,
  pemFileProblem,
  TlsConnectError,
  type PgSslMode,
  type TlsPeer,
} from '@sluice/config';
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Client } from 'pg';

/**
 * A TLS handshake with PostgreSQL failed (an untrusted or misnamed server certificate, a refused
 * client certificate, a server without TLS): the message names the `PG_URL` parameter to fix. Its
 * `code` is the SQLSTATE of a connection that could not be established, so every store gate treats
 * it as PostgreSQL being unavailable (consumers hold their messages) and never as a bad statement.
 */
export class PgTlsError extends TlsConnectError {
  override readonly name = 'PgTlsError';
  override readonly code = '08001';
}

/** How node-postgres connects: the URL without its TLS parameters, and the TLS options they give. */
export interface PgConnectionConfig {
  connectionString: string;
  /** `false`: plaintext (PGSSLMODE and friends are ignored; the URL is the only setting). */
  ssl: false | ConnectionOptions;
  /** The URL's `sslmode`. */
  sslmode: PgSslMode;
  /** The names of the settings, for error messages. */
  peer: (host: string, port: number) => TlsPeer;
  /** The variable holding the URL. */
  variable: string;
}

/**
 * Reads libpq's TLS parameters of `url` (see `pgUrl` in @sluice/config) into node-postgres options,
 * with libpq's meaning: `require` encrypts without checking the certificate (but checks the chain,
 * like `verify-ca`, when `sslrootcert` is set), `verify-ca` checks the chain, `verify-full` the chain
 * and the host name. Throws {@link ConfigError} naming `variable`.
 */
export function pgConnectionConfig(url: string, variable = 'PG_URL'): PgConnectionConfig {
  const parsed = parsePgTls(url);
  if ('problems' in parsed)
    throw ConfigError.of(parsed.problems.map((reason) => ({ variable, reason })));
  const s = parsed.settings;
  const peer = (host: string, port: number): TlsPeer => ({
    peer: `PostgreSQL at ${host}:${port}`,
    ca: `sslrootcert in ${variable}`,
    caFile: s.sslrootcert,
    clientCert: `sslcert/sslkey in ${variable}`,
  });
  const base = { connectionString: s.url, sslmode: s.sslmode, peer, variable };
  if (s.sslmode === 'disable') return { ...base, ssl: false };
  const read = (param: string, path: string) => {
    const problem = pemFileProblem(path);
    if (problem) throw new ConfigError(variable, `${param}: ${problem}`);
    return readFileSync(path);
  };
  const files = {
    ...(s.sslrootcert ? { ca: read('sslrootcert', s.sslrootcert) } : {}),
    ...(s.sslcert ? { cert: read('sslcert', s.sslcert) } : {}),
    ...(s.sslkey ? { key: read('sslkey', s.sslkey) } : {}),
  };
  const checkChain = s.sslmode !== 'require' || s.sslrootcert !== undefined;
  const ssl: ConnectionOptions = {
    ...files,
    rejectUnauthorized: checkChain,
    // verify-ca (and require with a root certificate): the chain, not the name.
    ...(s.sslmode === 'verify-full' ? {} : { checkServerIdentity: () => undefined }),
  };
  return { ...base, ssl };
}

/** `err` as a {@link PgTlsError} when it is a TLS failure (or a server without TLS), else itself. */
export function explainPgError(
  err: unknown,
  config: PgConnectionConfig,
  host: string,
  port: number,
): unknown {
  if (err instanceof PgTlsError) return err;
  const peer = config.peer(host, port);
  const explained = TlsConnectError.from(err, peer);
  if (explained) return new PgTlsError(explained.kind, explained.message, err);
  if (err instanceof Error && /server does not support SSL/i.test(err.message))
    return new PgTlsError(
      'handshake',
      `${peer.peer} does not accept TLS connections, but ${config.variable} has sslmode=${config.sslmode}: turn ssl on in postgresql.conf, or set sslmode=disable`,
      err,
    );
  return err;
}

/** A node-postgres Client whose connection errors are {@link explainPgError}ed. */
export function tlsExplainingClient(config: PgConnectionConfig): typeof Client {
  return class TlsExplainingClient extends Client {
    override connect(): Promise<Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: Client) => void)): void;
    override connect(
      callback?: ((err: Error) => void) | ((err: null, c: Client) => void),
    ): Promise<Client> | void {
      const explain = (err: unknown) => explainPgError(err, config, this.host, this.port);
      if (callback) {
        const cb = callback as (err: Error | null, c?: Client) => void;
        return super.connect(((err: Error | null, c?: Client) =>
          cb(err && (explain(err) as Error), c)) as (err: Error) => void);
      }
      return super.connect().catch((err: unknown) => {
        throw explain(err);
      });
    }
  };
}
