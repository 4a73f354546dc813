import type { Authenticator, NatsConnection } from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
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
  const nc = await connect({
    servers: opts.servers.split(',').map((s) => s.trim()),
    name: opts.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 1_000,
    waitOnFirstConnect: opts.waitOnFirstConnect ?? true,
    // Otherwise every request/publish builds Error objects for async stack traces: ~15% of CPU in
    // a publishing service, measured. Timeouts still raise typed errors, without the caller's stack.
    noAsyncTraces: true,
    ...(authenticator ? { authenticator } : {}),
    ...(opts.user !== undefined ? { user: opts.user, pass: opts.password ?? '' } : {}),
    ...(opts.token !== undefined ? { token: opts.token } : {}),
    ...(opts.inboxPrefix ? { inboxPrefix: opts.inboxPrefix } : {}),
  });
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
  };
}
