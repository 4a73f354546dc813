// TLS settings shared by every hop: PEM file fields checked when the config is parsed, reading them
// into node:tls options with a ConfigError naming the variable, and turning a failed handshake into
// a sentence that names the setting to fix. Plaintext stays the default everywhere.
import { readFileSync } from 'node:fs';
import type { ConnectionOptions, SecureContextOptions } from 'node:tls';
import { ConfigError, SluiceError } from '@sluice/errors';
import { z } from 'zod';

/** Why the PEM file at `path` cannot be used; `undefined` when it can. */
export function pemFileProblem(path: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    return `cannot read ${path}: ${(err as Error).message}`;
  }
  return text.includes('-----BEGIN ')
    ? undefined
    : `${path} is not a PEM file (no -----BEGIN line)`;
}

/** An optional path to a PEM file (certificate, CA bundle or private key), readable when parsed. */
export const pemFile = () =>
  z
    .string()
    .superRefine((path, ctx) => {
      const problem = pemFileProblem(path);
      if (problem) ctx.addIssue({ code: 'custom', message: problem });
    })
    .optional();

/** Reads the PEM file `path` of setting `variable`; a {@link ConfigError} naming it when unreadable. */
export function readPem(path: string, variable: string): Buffer {
  const problem = pemFileProblem(path);
  if (problem) throw new ConfigError(variable, problem);
  return readFileSync(path);
}

/** One file setting: the variable (or URL parameter) that names it, and its value. */
export interface PemSetting {
  /** How a deployer sets it, for error messages: `REDIS_TLS_CA`, `PG_URL sslrootcert`. */
  variable: string;
  path: string | undefined;
}

/** What a TLS client trusts and presents. */
export interface ClientTlsSettings {
  /** CA bundle the server's certificate must chain to; unset: the system's CAs. */
  ca: PemSetting;
  /** Client certificate (mTLS), with `key`. */
  cert: PemSetting;
  key: PemSetting;
}

/** The `node:tls` options of a client from its files; throws {@link ConfigError}. */
export function readClientTls(
  s: ClientTlsSettings,
): Pick<ConnectionOptions, 'ca' | 'cert' | 'key'> {
  if (Boolean(s.cert.path) !== Boolean(s.key.path)) {
    const missing = s.cert.path ? s.key : s.cert;
    throw new ConfigError(
      missing.variable,
      `is required with ${s.cert.path ? s.cert.variable : s.key.variable}: a client certificate needs its key`,
    );
  }
  return {
    ...(s.ca.path ? { ca: readPem(s.ca.path, s.ca.variable) } : {}),
    ...(s.cert.path ? { cert: readPem(s.cert.path, s.cert.variable) } : {}),
    ...(s.key.path ? { key: readPem(s.key.path, s.key.variable) } : {}),
  };
}

/** The variables of one TLS listener. */
export interface ServerTlsSettings {
  cert: PemSetting;
  key: PemSetting;
  /** CA bundle verifying client certificates; when set, every client must present one (mTLS). */
  ca: PemSetting;
}

/** A TLS listener's material: `node:https`/`node:tls` server options. */
export type ServerTls = Pick<SecureContextOptions, 'cert' | 'key' | 'ca'> & {
  requestCert: boolean;
  rejectUnauthorized: boolean;
};

/**
 * The server options of a listener from its files, `undefined` when its certificate and key are
 * unset (plaintext). Throws {@link ConfigError} naming the variable: a key without a certificate (or
 * the reverse), a client CA without both, an unreadable file.
 */
export function readServerTls(s: ServerTlsSettings): ServerTls | undefined {
  if (!s.cert.path && !s.key.path) {
    if (s.ca.path)
      throw new ConfigError(s.ca.variable, `needs ${s.cert.variable} and ${s.key.variable}`);
    return undefined;
  }
  if (!s.cert.path || !s.key.path) {
    const missing = s.cert.path ? s.key : s.cert;
    throw new ConfigError(
      missing.variable,
      `is required with ${s.cert.path ? s.cert.variable : s.key.variable}: set both or neither`,
    );
  }
  const ca = s.ca.path ? readPem(s.ca.path, s.ca.variable) : undefined;
  return {
    cert: readPem(s.cert.path, s.cert.variable),
    key: readPem(s.key.path, s.key.variable),
    ...(ca ? { ca } : {}),
    requestCert: Boolean(ca),
    rejectUnauthorized: Boolean(ca),
  };
}

/** What kind of TLS failure an error is. */
export type TlsFailureKind =
  /** The peer's certificate does not chain to a trusted CA. */
  | 'untrusted'
  /** The certificate is valid but for another host name or address. */
  | 'hostname'
  /** The certificate is expired or not valid yet. */
  | 'expired'
  /** The server refused our client certificate, or wanted one and got none. */
  | 'client-certificate'
  /** Another handshake failure (protocol, cipher, a non-TLS peer). */
  | 'handshake';

const UNTRUSTED = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'INVALID_CA',
]);
const EXPIRED = new Set(['CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID']);
// Alerts a server sends when it refuses the client's certificate (or the lack of one).
const CLIENT_CERT_ALERT =
  /ALERT_(CERTIFICATE_REQUIRED|UNKNOWN_CA|BAD_CERTIFICATE|CERTIFICATE_UNKNOWN|HANDSHAKE_FAILURE|ACCESS_DENIED|DECRYPT_ERROR)/;

/** OpenSSL's `…:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:…` → `tlsv1 alert unknown ca`. */
function tidy(message: string): string {
  return (/SSL routines:[^:]*:([^:]+)/.exec(message)?.[1] ?? message).split('\n')[0]!.trim();
}

/**
 * The TLS failure in `err` or its causes (drivers wrap the socket error), with its code and kind;
 * `undefined` for anything else (a refused connection, a timeout).
 */
export function tlsFailureOf(
  err: unknown,
): { kind: TlsFailureKind; code: string; message: string } | undefined {
  for (let e = err, depth = 0; e && depth < 8; depth++) {
    const { code, message, reason } = e as { code?: unknown; message?: unknown; reason?: unknown };
    const c = typeof code === 'string' ? code : '';
    const msg = typeof message === 'string' ? message : '';
    const kind: TlsFailureKind | undefined = UNTRUSTED.has(c)
      ? 'untrusted'
      : c === 'ERR_TLS_CERT_ALTNAME_INVALID'
        ? 'hostname'
        : EXPIRED.has(c)
          ? 'expired'
          : CLIENT_CERT_ALERT.test(c) ||
              /alert (certificate required|unknown ca|bad certificate)/i.test(msg)
            ? 'client-certificate'
            : c.startsWith('ERR_SSL_') || c.startsWith('ERR_TLS_')
              ? 'handshake'
              : undefined;
    if (kind) {
      // Recognised by its message only: the socket error under it carries the code.
      const deeper = c ? undefined : tlsFailureOf((e as { cause?: unknown }).cause);
      return deeper ?? { kind, code: c || 'TLS', message: tidy(msg) };
    }
    // MongoDB's server selection error keeps the socket error under `reason.servers[*].error`.
    const servers = (reason as { servers?: Map<string, { error?: unknown }> } | undefined)?.servers;
    if (servers instanceof Map)
      for (const s of servers.values()) {
        const inner = tlsFailureOf(s.error);
        if (inner) return inner;
      }
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Who failed the handshake and which settings decide it, for {@link TlsConnectError}. */
export interface TlsPeer {
  /** `PostgreSQL at db:5432`, `Redis at 127.0.0.1:6380`. */
  peer: string;
  /** The setting holding the CA the peer's certificate must chain to (`REDIS_TLS_CA`). */
  ca: string;
  /** Its value; unset: the system's CAs. */
  caFile?: string | undefined;
  /** The settings of our client certificate (`REDIS_TLS_CERT/REDIS_TLS_KEY`). */
  clientCert: string;
}

/**
 * A TLS handshake with a store or server failed: names what to fix. Retriable: the peer's
 * certificate may be replaced while we wait, and a consumer must hold its messages (stop pulling)
 * rather than dead-letter them over a transport problem.
 */
export class TlsConnectError extends SluiceError {
  override readonly name: string = 'TlsConnectError';
  readonly code: string = 'tls_handshake_failed';

  constructor(
    readonly kind: TlsFailureKind,
    message: string,
    cause: unknown,
  ) {
    super(message, { retriable: true, httpStatus: 503, cause });
  }

  /** The explained error for `err`, or `undefined` when `err` is not a TLS failure. */
  static from(err: unknown, p: TlsPeer): TlsConnectError | undefined {
    const f = tlsFailureOf(err);
    if (!f) return undefined;
    const why = `${f.code}: ${f.message}`;
    const text: Record<TlsFailureKind, string> = {
      untrusted: `the certificate of ${p.peer} is not signed by ${p.caFile ? `the CA in ${p.caFile} (${p.ca})` : `a CA the system trusts (${p.ca} is unset)`} (${why}); set ${p.ca} to the CA that signed the server's certificate`,
      hostname: `the certificate of ${p.peer} does not name that host (${why}); connect by a name in its subjectAltName, or reissue it`,
      expired: `the certificate of ${p.peer} is expired or not valid yet (${why}); renew it`,
      'client-certificate': `${p.peer} refused our client certificate (${why}); set ${p.clientCert} to a certificate signed by a CA the server trusts`,
      handshake: `TLS handshake with ${p.peer} failed (${why}); check that it serves TLS on that port`,
    };
    return new TlsConnectError(f.kind, text[f.kind], err);
  }
}

/** `sslmode` values Sluice accepts, with libpq's meaning. */
export const PG_SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type PgSslMode = (typeof PG_SSL_MODES)[number];

/** The TLS parameters of a `postgres://` URL (libpq's names) and the URL without them. */
export interface PgTlsSettings {
  sslmode: PgSslMode;
  /** CA bundle the server's certificate must chain to; unset: the system's CAs. */
  sslrootcert?: string | undefined;
  /** Client certificate (mTLS), with `sslkey`. */
  sslcert?: string | undefined;
  sslkey?: string | undefined;
  /** The URL with the TLS parameters removed (node-postgres would otherwise apply its own reading). */
  url: string;
}

const PG_TLS_PARAMS = ['sslmode', 'sslrootcert', 'sslcert', 'sslkey'] as const;

/**
 * Reads the TLS parameters of a PostgreSQL URL: `sslmode` (`disable`, the default; `require`;
 * `verify-ca`; `verify-full`), `sslrootcert`, `sslcert`, `sslkey`. Returns the problems a deployer has
 * to fix (an unknown or silently-downgrading mode, a file without a mode that uses it, an unreadable
 * file) or the settings.
 */
export function parsePgTls(url: string): { settings: PgTlsSettings } | { problems: string[] } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    // Not for this function to judge (pgUrl's pattern does); node-postgres gets it as written.
    return { settings: { sslmode: 'disable', url } };
  }
  const q = u.searchParams;
  if (!PG_TLS_PARAMS.some((p) => q.has(p)) && !q.has('ssl'))
    return { settings: { sslmode: 'disable', url } };
  const problems: string[] = [];
  if (q.has('ssl'))
    problems.push('use sslmode=disable|require|verify-ca|verify-full instead of ssl=');
  const mode = q.get('sslmode') ?? 'disable';
  if (!(PG_SSL_MODES as readonly string[]).includes(mode))
    problems.push(
      mode === 'prefer' || mode === 'allow'
        ? `sslmode=${mode} falls back to plaintext without telling: use disable, require, verify-ca or verify-full`
        : `sslmode=${mode} is not one of ${PG_SSL_MODES.join(', ')}`,
    );
  const files = {
    sslrootcert: q.get('sslrootcert'),
    sslcert: q.get('sslcert'),
    sslkey: q.get('sslkey'),
  };
  for (const [param, path] of Object.entries(files)) {
    if (path === null) continue;
    if (mode === 'disable')
      problems.push(
        `${param} is set but TLS is off: add sslmode=verify-full (or require, verify-ca)`,
      );
    const problem = pemFileProblem(path);
    if (problem) problems.push(`${param}: ${problem}`);
  }
  if ((files.sslcert === null) !== (files.sslkey === null))
    problems.push(
      `${files.sslcert === null ? 'sslcert' : 'sslkey'} is required with ${files.sslcert === null ? 'sslkey' : 'sslcert'}`,
    );
  if (problems.length > 0) return { problems };
  for (const p of [...PG_TLS_PARAMS, 'ssl']) q.delete(p);
  return {
    settings: {
      sslmode: mode as PgSslMode,
      sslrootcert: files.sslrootcert ?? undefined,
      sslcert: files.sslcert ?? undefined,
      sslkey: files.sslkey ?? undefined,
      url: u.toString(),
    },
  };
}

/**
 * What is wrong with the TLS parameters of a MongoDB URL: `tlsCAFile` and `tlsCertificateKeyFile`
 * must be readable PEM files (the latter holding the key too), and need `tls=true`.
 */
export function mongoTlsProblems(url: string): string[] {
  const query = url.split('?')[1];
  if (query === undefined) return [];
  const q = new URLSearchParams(query);
  const get = (name: string) => {
    for (const [k, v] of q) if (k.toLowerCase() === name.toLowerCase()) return v;
    return undefined;
  };
  const problems: string[] = [];
  // mongodb+srv:// turns TLS on unless told otherwise.
  const on = get('tls') ?? get('ssl') ?? (url.startsWith('mongodb+srv:') ? 'true' : 'false');
  for (const param of ['tlsCAFile', 'tlsCertificateKeyFile']) {
    const path = get(param);
    if (path === undefined) continue;
    if (on !== 'true') problems.push(`${param} is set but TLS is off: add tls=true`);
    const problem = pemFileProblem(path);
    if (problem) problems.push(`${param}: ${problem}`);
    else if (
      param === 'tlsCertificateKeyFile' &&
      !readFileSync(path, 'utf8').includes('PRIVATE KEY-----')
    )
      problems.push(`${param}: ${path} must hold the client certificate and its private key`);
  }
  return problems;
}

/** A TLS client's options and the names of its settings (for {@link TlsConnectError}). */
export interface ClientTls {
  options: ConnectionOptions;
  peer: TlsPeer;
}

/** The Redis variables every service that uses Redis reads. */
export interface RedisTlsConfig {
  REDIS_URL: string;
  REDIS_TLS_CA?: string | undefined;
  REDIS_TLS_CERT?: string | undefined;
  REDIS_TLS_KEY?: string | undefined;
}

/**
 * ioredis's `tls` option from `REDIS_URL` and `REDIS_TLS_*`: `undefined` for `redis://` (plaintext);
 * for `rediss://`, the CA (default: the system's) and the client certificate. Throws
 * {@link ConfigError} naming the variable: a `REDIS_TLS_*` file with a `redis://` URL, a certificate
 * without its key, an unreadable file.
 */
export function redisTls(c: RedisTlsConfig): ClientTls | undefined {
  const settings = {
    ca: { variable: 'REDIS_TLS_CA', path: c.REDIS_TLS_CA },
    cert: { variable: 'REDIS_TLS_CERT', path: c.REDIS_TLS_CERT },
    key: { variable: 'REDIS_TLS_KEY', path: c.REDIS_TLS_KEY },
  };
  if (!/^rediss:/i.test(c.REDIS_URL)) {
    const set = Object.values(settings).find((s) => s.path);
    if (set)
      throw new ConfigError(set.variable, 'needs a rediss:// REDIS_URL (redis:// is plaintext)');
    return undefined;
  }
  let where = 'REDIS_URL';
  try {
    const u = new URL(c.REDIS_URL);
    where = `${u.hostname}:${u.port || '6379'}`;
  } catch {
    // redisUrl()'s pattern is the judge of the URL; the name only serves messages.
  }
  return {
    options: readClientTls(settings),
    peer: {
      peer: `Redis at ${where}`,
      ca: 'REDIS_TLS_CA',
      caFile: c.REDIS_TLS_CA,
      clientCert: 'REDIS_TLS_CERT/REDIS_TLS_KEY',
    },
  };
}

/**
 * For a client's 'error' listener: returns true when `err` is a TLS failure and logs it, explained
 * ({@link TlsConnectError}), at error level the first time and again only when it changes; a client
 * that reconnects in the background would otherwise fail its handshake silently, or once a second.
 */
export function tlsFailureReporter(
  peer: TlsPeer,
  log: { error(fields: object, msg: string): void },
): (err: unknown) => boolean {
  let last: string | undefined;
  return (err) => {
    const explained = TlsConnectError.from(err, peer);
    if (!explained) return false;
    if (explained.message !== last) {
      last = explained.message;
      log.error({ err: explained }, explained.message);
    }
    return true;
  };
}

/**
 * A listener's TLS from the parsed config's `<prefix>_TLS_CERT`, `<prefix>_TLS_KEY` and
 * `<prefix>_TLS_CA` (see {@link readServerTls}): `undefined` for plaintext; throws
 * {@link ConfigError} naming the variable.
 */
export function listenerTls(
  config: Readonly<Record<string, unknown>>,
  prefix: string,
): ServerTls | undefined {
  const setting = (name: string) => {
    const variable = `${prefix}_TLS_${name}`;
    const value = config[variable];
    return { variable, path: typeof value === 'string' ? value : undefined };
  };
  return readServerTls({ cert: setting('CERT'), key: setting('KEY'), ca: setting('CA') });
}
