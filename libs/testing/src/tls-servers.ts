// Real servers that speak only TLS, each started by one spec file on a free loopback port with the
// certificates of a TestCa, and removed with their data when it is done: PostgreSQL 15 (ssl=on, a
// temp cluster), redis-server (--tls-port, plaintext port off) and FerretDB (--listen-tls).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, portOpen } from './servers';
import type { TestCertificate } from './tls';
import { waitFor } from './wait';

/** A TLS-only server process owned by one spec file. */
export interface TlsServer {
  host: '127.0.0.1';
  port: number;
  /** Every stdout/stderr line so far (for a failing test's message). */
  lines: string[];
  /** Stops the process and deletes its data. */
  stop(): Promise<void>;
}

/** The certificates of a TLS server. */
export interface TlsServerOptions {
  /** Its certificate and key. */
  server: TestCertificate;
  /** CA file verifying client certificates. */
  clientCaFile: string;
  /** Refuse clients without a certificate signed by `clientCaFile`. Default `false`. */
  requireClientCert?: boolean;
}

const PG_BIN = process.env['PG_BIN_DIR'] ?? '/usr/lib/postgresql/15/bin';

function startProcess(
  what: string,
  cmd: string,
  args: readonly string[],
  port: number,
  dir: string,
  ready: (lines: readonly string[]) => boolean | Promise<boolean>,
  stopSignal: NodeJS.Signals = 'SIGTERM',
): Promise<TlsServer> {
  const proc: ChildProcess = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let exit: number | string | undefined;
  const exited = new Promise<void>((resolve) =>
    proc.once('exit', (code, sig) => {
      exit = code ?? sig ?? -1;
      resolve();
    }),
  );
  const onData = (b: Buffer) => {
    for (const l of b.toString('utf8').split('\n')) if (l && lines.length < 10_000) lines.push(l);
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  const server: TlsServer = {
    host: '127.0.0.1',
    port,
    lines,
    async stop() {
      if (exit === undefined) {
        proc.kill(stopSignal);
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          exited,
          new Promise<void>((r) => (timer = setTimeout(r, 10_000))),
        ]).finally(() => clearTimeout(timer));
        if (exit === undefined) {
          proc.kill('SIGKILL');
          await exited;
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return waitFor(
    `${what} on 127.0.0.1:${port}`,
    async () => {
      if (exit !== undefined)
        throw new Error(`${what} exited (${exit}): ${lines.slice(-10).join('\n')}`);
      return (await ready(lines)) && server;
    },
    { timeoutMs: 30_000 },
  ).catch(async (err: unknown) => {
    await server.stop();
    throw err;
  });
}

/** uid and gid of the `postgres` account: initdb and postgres refuse to run as root. */
function postgresAccount(): { uid: number; gid: number } {
  const id = (flag: string) =>
    Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
  return { uid: id('-u'), gid: id('-g') };
}

/**
 * A temp PostgreSQL 15 cluster (`initdb`, trust authentication, user `postgres`, database
 * `postgres`) on a free port with `ssl=on` that refuses plaintext TCP connections (`hostnossl …
 * reject`). With `requireClientCert`, a client must present a certificate signed by `clientCaFile`
 * whose CN is the user name (`clientcert=verify-full`). As root, initdb and postgres run as the
 * `postgres` account (`setpriv`), which then owns the temp dir.
 */
export async function privateTlsPostgres(o: TlsServerOptions): Promise<TlsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-pg-tls-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const account = asRoot ? postgresAccount() : undefined;
  const as = (cmd: string): [string, string[]] =>
    account
      ? [
          'setpriv',
          [`--reuid=${account.uid}`, `--regid=${account.gid}`, '--init-groups', '--', cmd],
        ]
      : [cmd, []];
  if (account) chownSync(dir, account.uid, account.gid);
  const [initdb, initdbPre] = as(join(PG_BIN, 'initdb'));
  try {
    execFileSync(
      initdb,
      [...initdbPre, '-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'],
      { stdio: 'pipe' },
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const e = err as Error & { stderr?: Buffer };
    throw new Error(`initdb failed: ${e.stderr?.toString().trim() || e.message}`, { cause: err });
  }
  const files: Array<[string, string]> = [
    [o.server.certFile, 'server.crt'],
    [o.server.keyFile, 'server.key'],
    [o.clientCaFile, 'root.crt'],
  ];
  for (const [from, to] of files) {
    copyFileSync(from, join(data, to));
    chmodSync(join(data, to), 0o600);
    if (account) chownSync(join(data, to), account.uid, account.gid);
  }
  writeFileSync(
    join(data, 'pg_hba.conf'),
    [
      'local all all trust',
      `hostssl all all 127.0.0.1/32 trust${o.requireClientCert ? ' clientcert=verify-full' : ''}`,
      'hostnossl all all 127.0.0.1/32 reject',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  const [postgres, postgresPre] = as(join(PG_BIN, 'postgres'));
  return startProcess(
    'PostgreSQL (TLS)',
    postgres,
    [
      ...postgresPre,
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'ssl=on',
      '-c',
      'ssl_cert_file=server.crt',
      '-c',
      'ssl_key_file=server.key',
      '-c',
      'ssl_ca_file=root.crt',
      '-c',
      'fsync=off',
      '-c',
      'max_connections=20',
    ],
    port,
    dir,
    (lines) => lines.some((l) => l.includes('database system is ready to accept connections')),
    // Fast shutdown: disconnect clients, no waiting for them.
    'SIGINT',
  );
}

/**
 * A `redis-server` that listens only with TLS (`--port 0 --tls-port <free>`), no persistence. With
 * `requireClientCert`, clients must present a certificate signed by `clientCaFile`
 * (`--tls-auth-clients yes`); else a certificate is optional.
 */
export async function privateTlsRedis(o: TlsServerOptions): Promise<TlsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-redis-tls-'));
  const port = await freePort();
  return startProcess(
    'redis-server (TLS)',
    process.env['REDIS_SERVER_BIN'] ?? 'redis-server',
    [
      '--bind',
      '127.0.0.1',
      '--port',
      '0',
      '--tls-port',
      String(port),
      '--tls-cert-file',
      o.server.certFile,
      '--tls-key-file',
      o.server.keyFile,
      '--tls-ca-cert-file',
      o.clientCaFile,
      '--tls-auth-clients',
      o.requireClientCert ? 'yes' : 'optional',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      dir,
    ],
    port,
    dir,
    () => portOpen(port),
  );
}

/** The FerretDB binary `scripts/lib.sh` builds (`ferretdb_bin`). */
export function ferretdbBin(): string {
  if (process.env['FERRETDB_BIN']) return process.env['FERRETDB_BIN'];
  return execFileSync('bash', ['-c', 'source scripts/lib.sh >/dev/null; ferretdb_bin'], {
    cwd: join(__dirname, '..', '..', '..'),
    encoding: 'utf8',
  }).trim();
}

/**
 * A FerretDB (MongoDB wire protocol, SQLite backend in a temp dir, as `scripts/lib.sh` runs the
 * shared one) that listens only with TLS (`--listen-tls`). With a CA file FerretDB requires client
 * certificates signed by it, whatever `requireClientCert` says.
 */
export async function privateTlsFerretDb(o: TlsServerOptions): Promise<TlsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ferretdb-tls-'));
  const port = await freePort();
  return startProcess(
    'FerretDB (TLS)',
    ferretdbBin(),
    [
      '--listen-addr=',
      `--listen-tls=127.0.0.1:${port}`,
      `--listen-tls-cert-file=${o.server.certFile}`,
      `--listen-tls-key-file=${o.server.keyFile}`,
      `--listen-tls-ca-file=${o.clientCaFile}`,
      '--handler=sqlite',
      `--sqlite-url=file:${dir}/`,
      `--state-dir=${dir}`,
      '--telemetry=disable',
      '--debug-addr=-',
      '--log-level=error',
    ],
    port,
    dir,
    () => portOpen(port),
  );
}
