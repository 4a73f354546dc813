/**
 * `npm start -- --tls`: a development certificate authority and one server certificate for
 * `127.0.0.1` / `localhost`, made with the `openssl` CLI in a git-ignored folder (default
 * `tmp/dev-tls/`) and reused while they are valid, so a `--cacert` path pasted once keeps working.
 *
 * Not the test CA of libs/testing (a temp dir per run, valid two days): this one persists, lives a
 * year, and is remade when a file is missing, expires within a day, or no longer chains to the CA.
 */
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const OPENSSL = process.env['OPENSSL_BIN'] ?? 'openssl';
const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
/** Days the CA and server certificate are valid. */
const DAYS = '365';

/** The files of the development CA and the services' server certificate. */
export interface DevTls {
  dir: string;
  /** The CA certificate (PEM): what clients trust (`curl --cacert`, fleet-sim `--ca`). */
  caFile: string;
  /** The server certificate (PEM) for `IP:127.0.0.1`, `DNS:localhost`. */
  certFile: string;
  /** Its private key (PEM, mode 0600). */
  keyFile: string;
  /** Whether the files were made by this call (false: reused). */
  created: boolean;
}

async function openssl(args: readonly string[], cwd: string): Promise<string> {
  try {
    return (await run(OPENSSL, args, { cwd })).stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/** Whether the files in `t` exist, chain to the CA, and stay valid for another day. */
async function usable(t: Omit<DevTls, 'created'>): Promise<boolean> {
  if (![t.caFile, t.certFile, t.keyFile].every((f) => existsSync(f))) return false;
  try {
    for (const f of [t.caFile, t.certFile])
      await openssl(['x509', '-checkend', '86400', '-noout', '-in', f], t.dir);
    await openssl(['verify', '-CAfile', t.caFile, t.certFile], t.dir);
    return true;
  } catch {
    return false;
  }
}

/**
 * The development CA and server certificate in `dir`: reused when usable, else (re)made. Keys are
 * written with mode 0600.
 */
export async function ensureDevTls(dir: string): Promise<DevTls> {
  const files = {
    dir,
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, 'server.crt'),
    keyFile: join(dir, 'server.key'),
  };
  if (await usable(files)) return { ...files, created: false };
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const caKey = join(dir, 'ca.key');
  await openssl(
    [
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      caKey,
      '-out',
      files.caFile,
      '-days',
      DAYS,
      '-subj',
      '/CN=sluice-dev-ca',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  const ext = join(dir, 'server.ext');
  writeFileSync(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ].join('\n'),
  );
  const csr = join(dir, 'server.csr');
  await openssl(
    ['req', '-new', ...EC_KEY, '-keyout', files.keyFile, '-out', csr, '-subj', '/CN=localhost'],
    dir,
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      files.caFile,
      '-CAkey',
      caKey,
      '-set_serial',
      String(Date.now()),
      '-days',
      DAYS,
      '-extfile',
      ext,
      '-out',
      files.certFile,
    ],
    dir,
  );
  rmSync(csr);
  rmSync(ext);
  for (const key of [caKey, files.keyFile]) chmodSync(key, 0o600);
  return { ...files, created: true };
}
