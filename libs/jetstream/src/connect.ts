import type { Authenticator, ConnectionOptions, NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import { readClientTls, TlsConnectError, type TlsPeer } from '@sluice/config';
import type { Logger } from '@sluice/observability';

export interface NatsOptions {
  /** Comma-separated server URLs. */
  servers: string;
  /** Connection name shown in NATS monitoring. */
  name: string;
  /** Credentials file (JWT + nkey seed). */
  credsFile?: string | undefined;
  /** File holding an NKey user seed (`SU...`). */
  nkeySeedFile?: string | undefined;
  /** User name and password. */
  user?: string | undefined;
  password?: string | undefined;
  /** Authentication token. */
  token?: string | undefined;
  /** Prefix of the connection's reply subjects. Default `_INBOX`. */
  inboxPrefix?: string | undefined;
  /** How long one connection attempt may take (TCP, TLS, CONNECT/PONG). Default 5 s. */
  connectTimeoutMs?: number;
  /** TLS to the servers ({@link natsTls}); unset: as the URL says (plaintext for `nats://`). */
  tls?: NatsTls | undefined;
  /**
   * `false`: streams and consumers are never created or updated through this connection, only bound
   * ({@link ensureStream} and {@link ensureConsumer} check that they exist). Default true.
   */
  provision?: boolean;
  logger?: Logger;
  /**
   * Wait (and retry) until the first connection succeeds, as a service should. A command-line tool
   * sets false to fail at once with the connection error. Default true.
   */
  waitOnFirstConnect?: boolean;
}

const bindOnly = new WeakSet<object>();

/** Makes every later {@link ensureStream}/{@link ensureConsumer} through `nc` bind-only. */
export function setBindOnly(nc: NatsConnection): void {
  bindOnly.add(nc);
}

/** Whether `nc` was connected with `provision: false` (or marked with {@link setBindOnly}). */
export function isBindOnly(nc: NatsConnection): boolean {
  return bindOnly.has(nc);
}

async function authenticatorOf(opts: NatsOptions): Promise<Authenticator | undefined> {
  if (!opts.credsFile && !opts.nkeySeedFile) return undefined;
  const { credsAuthenticator, nkeyAuthenticator } = await import('@nats-io/transport-node');
  const { readFile } = await import('node:fs/promises');
  if (opts.credsFile) return credsAuthenticator(await readFile(opts.credsFile));
  const seed = (await readFile(opts.nkeySeedFile!, 'utf8')).trim();
  return nkeyAuthenticator(new TextEncoder().encode(seed));
}

/**
 * Connects with unlimited reconnects (a NATS outage pauses the service, it does not kill it),
 * waits for the first connection if the server is not up yet, and skips async stack traces.
 */
export async function connectNats(opts: NatsOptions): Promise<NatsConnection> {
  const authenticator = await authenticatorOf(opts);
  const base: ConnectionOptions = {
    servers: opts.servers.split(',').map((s) => s.trim()),
    name: opts.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    timeout: opts.connectTimeoutMs ?? 5_000,
    // Otherwise every request/publish builds Error objects for async stack traces: ~15% of CPU in
    // a publishing service, measured. Timeouts still raise typed errors, without the caller's stack.
    noAsyncTraces: true,
    ...(authenticator ? { authenticator } : {}),
    ...(opts.user !== undefined ? { user: opts.user, pass: opts.password ?? '' } : {}),
    ...(opts.token !== undefined ? { token: opts.token } : {}),
    ...(opts.inboxPrefix ? { inboxPrefix: opts.inboxPrefix } : {}),
    ...(opts.tls ? { tls: opts.tls.options } : {}),
  };
  const wait = opts.waitOnFirstConnect ?? true;
  const nc =
    opts.tls && wait
      ? await connectTls(base, opts.tls, opts.logger)
      : await connect({ ...base, waitOnFirstConnect: wait });
  if (opts.provision === false) setBindOnly(nc);
  if (opts.logger) {
    const log = opts.logger;
    (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect' || s.type === 'reconnect' || s.type === 'error')
          log.warn({ nats: s.type }, `nats ${s.type}`);
      }
    })().catch(() => undefined);
  }
  return nc;
}

/** TLS options of a NATS connection and the settings that decide it (for error messages). */
export interface NatsTls {
  options: { ca?: string; cert?: string; key?: string };
  peer: TlsPeer;
}

/**
 * TLS to NATS from NATS_URL and NATS_TLS_*: `undefined` (plaintext) unless a `tls://` URL or a
 * NATS_TLS_* file asks for it. Throws ConfigError naming the variable (a certificate without its key,
 * an unreadable file).
 */
export function natsTls(config: {
  NATS_URL: string;
  NATS_TLS_CA?: string | undefined;
  NATS_TLS_CERT?: string | undefined;
  NATS_TLS_KEY?: string | undefined;
}): NatsTls | undefined {
  const files = [config.NATS_TLS_CA, config.NATS_TLS_CERT, config.NATS_TLS_KEY];
  if (!/(^|,)\s*tls:\/\//.test(config.NATS_URL) && files.every((f) => !f)) return undefined;
  const read = readClientTls({
    ca: { variable: 'NATS_TLS_CA', path: config.NATS_TLS_CA },
    cert: { variable: 'NATS_TLS_CERT', path: config.NATS_TLS_CERT },
    key: { variable: 'NATS_TLS_KEY', path: config.NATS_TLS_KEY },
  });
  const text = (b: unknown) => (b === undefined ? undefined : String(b));
  const options: NatsTls['options'] = {};
  for (const k of ['ca', 'cert', 'key'] as const) {
    const v = text(read[k]);
    if (v !== undefined) options[k] = v;
  }
  return {
    options,
    peer: {
      peer: `NATS at ${config.NATS_URL}`,
      ca: 'NATS_TLS_CA',
      caFile: config.NATS_TLS_CA,
      clientCert: 'NATS_TLS_CERT/NATS_TLS_KEY',
    },
  };
}

/**
 * The first connection over TLS, retried every second until it succeeds, as `waitOnFirstConnect`
 * would, but not silently: a certificate the client cannot trust fails at once (TlsConnectError
 * naming NATS_TLS_CA), and any other failure is logged, naming the settings a refused client
 * certificate points to (a server that requires one just closes the connection: a timeout here).
 */
async function connectTls(
  base: ConnectionOptions,
  tls: NatsTls,
  log: Logger | undefined,
): Promise<NatsConnection> {
  let lastLogged = Number.NEGATIVE_INFINITY;
  for (;;) {
    try {
      return await connect({ ...base, waitOnFirstConnect: false });
    } catch (err) {
      const explained = TlsConnectError.from(err, tls.peer);
      if (explained) throw explained;
      if (Date.now() - lastLogged >= 30_000) {
        lastLogged = Date.now();
        log?.warn(
          { err },
          `cannot connect to ${tls.peer.peer} over TLS yet, retrying: if the server is up, it may refuse our client certificate (${tls.peer.clientCert})`,
        );
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
  }
}

/** The connection options of the common NATS settings (libs/config `commonEnv`). */
export function natsOptionsOf(config: {
  NATS_URL: string;
  NATS_CREDS?: string | undefined;
  NATS_NKEY_SEED_FILE?: string | undefined;
  NATS_USER?: string | undefined;
  NATS_PASSWORD?: string | undefined;
  NATS_TOKEN?: string | undefined;
  NATS_INBOX_PREFIX?: string | undefined;
  NATS_PROVISION?: boolean | undefined;
  NATS_TLS_CA?: string | undefined;
  NATS_TLS_CERT?: string | undefined;
  NATS_TLS_KEY?: string | undefined;
}): Pick<
  NatsOptions,
  | 'servers'
  | 'credsFile'
  | 'nkeySeedFile'
  | 'user'
  | 'password'
  | 'token'
  | 'inboxPrefix'
  | 'provision'
  | 'tls'
> {
  return {
    servers: config.NATS_URL,
    credsFile: config.NATS_CREDS,
    nkeySeedFile: config.NATS_NKEY_SEED_FILE,
    user: config.NATS_USER,
    password: config.NATS_PASSWORD,
    token: config.NATS_TOKEN,
    inboxPrefix: config.NATS_INBOX_PREFIX,
    provision: config.NATS_PROVISION ?? true,
    tls: natsTls(config),
  };
}
