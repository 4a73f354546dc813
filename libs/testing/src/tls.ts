// A certificate authority made for one test run with the `openssl` CLI: CA, server and client
// certificates (EC P-256, valid for two days) in a temp dir, for TLS and mTLS tests against real
// servers. Two calls give two unrelated CAs: one for the "wrong CA" side of a test.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpsRequestOf } from 'node:https';
import { promisify } from 'node:util';

const run = promisify(execFile);
const OPENSSL = process.env['OPENSSL_BIN'] ?? '/usr/bin/openssl';

/** A key pair signed by a {@link TestCa}, as files and as PEM text. */
export interface TestCertificate {
  /** Subject common name. */
  cn: string;
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
}

export interface ServerCertificateOptions {
  /** Default `localhost`. */
  cn?: string;
  /** subjectAltName entries. Default `['IP:127.0.0.1', 'DNS:localhost']`. */
  altNames?: readonly string[];
}

export interface ClientCertificateOptions {
  /** subjectAltName entries, e.g. `['DNS:device-1']`. Default none. */
  altNames?: readonly string[];
}

/** A throw-away certificate authority in its own temp dir. */
export interface TestCa {
  name: string;
  dir: string;
  /** The CA certificate (PEM file): what a peer trusts. */
  certFile: string;
  /** The CA certificate, PEM. */
  cert: string;
  /** A server certificate, for `127.0.0.1` and `localhost` by default (serverAuth). */
  server(opts?: ServerCertificateOptions): Promise<TestCertificate>;
  /** A client certificate with common name `cn` (clientAuth). */
  client(cn: string, opts?: ClientCertificateOptions): Promise<TestCertificate>;
  /** Deletes the dir and every key in it. */
  remove(): void;
}

async function openssl(args: readonly string[], cwd: string): Promise<void> {
  try {
    await run(OPENSSL, args, { cwd });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

/** Creates a CA named `name` (its certificate's CN) in a new temp dir. */
export async function createTestCa(name = 'sluice-test-ca'): Promise<TestCa> {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-ca-'));
  const caKey = join(dir, 'ca.key');
  const caCert = join(dir, 'ca.crt');
  await openssl(
    [
      'req',
      '-x509',
      ...EC_KEY,
      '-keyout',
      caKey,
      '-out',
      caCert,
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  let n = 0;

  const issue = async (
    cn: string,
    usage: 'serverAuth' | 'clientAuth',
    altNames: readonly string[],
  ): Promise<TestCertificate> => {
    const base = join(dir, `${++n}-${cn.replace(/[^A-Za-z0-9_.-]/g, '_')}`);
    const ext = `${base}.ext`;
    writeFileSync(
      ext,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        `extendedKeyUsage=${usage}`,
        ...(altNames.length > 0 ? [`subjectAltName=${altNames.join(',')}`] : []),
      ].join('\n'),
    );
    await openssl(
      [
        'req',
        '-new',
        ...EC_KEY,
        '-keyout',
        `${base}.key`,
        '-out',
        `${base}.csr`,
        '-subj',
        `/CN=${cn}`,
      ],
      dir,
    );
    await openssl(
      [
        'x509',
        '-req',
        '-in',
        `${base}.csr`,
        '-CA',
        caCert,
        '-CAkey',
        caKey,
        '-set_serial',
        String(Date.now() * 1000 + n),
        '-days',
        '2',
        '-extfile',
        ext,
        '-out',
        `${base}.crt`,
      ],
      dir,
    );
    return {
      cn,
      certFile: `${base}.crt`,
      keyFile: `${base}.key`,
      cert: readFileSync(`${base}.crt`, 'utf8'),
      key: readFileSync(`${base}.key`, 'utf8'),
    };
  };

  return {
    name,
    dir,
    certFile: caCert,
    cert: readFileSync(caCert, 'utf8'),
    server: (o = {}) =>
      issue(o.cn ?? 'localhost', 'serverAuth', o.altNames ?? ['IP:127.0.0.1', 'DNS:localhost']),
    client: (cn, o = {}) => issue(cn, 'clientAuth', o.altNames ?? []),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** What a TLS client trusts and presents (PEM text). */
export interface ClientPem {
  ca: string;
  cert?: string | undefined;
  key?: string | undefined;
}

/** The answer of {@link httpsRequest}: status and body, or the error of a refused connection. */
export interface HttpsAnswer {
  status?: number;
  body?: string;
  error?: NodeJS.ErrnoException;
}

/**
 * One HTTPS request with `pem` (no connection reuse), never rejecting: a failed handshake is the
 * answer's `error` (its `code`, e.g. `UNABLE_TO_VERIFY_LEAF_SIGNATURE`).
 */
export function httpsRequest(
  url: string,
  pem: ClientPem,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<HttpsAnswer> {
  return new Promise((resolve) => {
    const req = httpsRequestOf(
      url,
      {
        method: init.method ?? 'GET',
        headers: init.headers ?? {},
        ca: pem.ca,
        ...(pem.cert ? { cert: pem.cert, key: pem.key } : {}),
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on('error', (error) => resolve({ error }));
    req.end(init.body);
  });
}
