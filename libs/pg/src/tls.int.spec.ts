// The platform's PostgreSQL path (PG_URL parsed by @sluice/config, createPool) against a real
// PostgreSQL 15 started by this file with ssl=on, plaintext refused and client certificates required
// (clientcert=verify-full: the certificate's CN is the user name).
import { ConfigError, loadConfig, pgUrl, z } from '@sluice/config';
import {
  createTestCa,
  privateTlsPostgres,
  type TestCa,
  type TestCertificate,
  type TlsServer,
} from '@sluice/testing';
import { DatabaseError, type Pool } from 'pg';
import { createPool, type PgLog } from './pool';
import { PgTlsError } from './tls';

const log: PgLog = { info: () => undefined, warn: () => undefined };
const schema = z.object({ PG_URL: pgUrl() });

describe('PostgreSQL over TLS (sslmode=verify-full)', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let client: TestCertificate;
  let strangerClient: TestCertificate;
  let pg: TlsServer;
  const pools: Pool[] = [];

  beforeAll(async () => {
    [ca, otherCa] = await Promise.all([createTestCa('sluice-test-ca'), createTestCa('other-ca')]);
    const server = await ca.server();
    client = await ca.client('postgres');
    strangerClient = await otherCa.client('postgres');
    pg = await privateTlsPostgres({ server, clientCaFile: ca.certFile, requireClientCert: true });
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.end()));
  });
  afterAll(async () => {
    await pg?.stop();
    ca?.remove();
    otherCa?.remove();
  });

  /** PG_URL of the TLS cluster with `params`, as a deployer writes it, through the config. */
  const pool = (params: Record<string, string>): Pool => {
    const query = new URLSearchParams(params).toString();
    const { PG_URL } = loadConfig(schema, {
      PG_URL: `postgres://postgres@127.0.0.1:${pg.port}/postgres${query ? `?${query}` : ''}`,
    });
    const p = createPool({ service: 'pg-tls-spec', url: PG_URL, max: 1, log });
    pools.push(p);
    return p;
  };
  const failure = async (p: Pool): Promise<unknown> =>
    p.query('SELECT 1').then(
      () => new Error('connected'),
      (err: unknown) => err,
    );

  it('connects with verify-full, the CA and a client certificate, over TLS', async () => {
    const p = pool({
      sslmode: 'verify-full',
      sslrootcert: ca.certFile,
      sslcert: client.certFile,
      sslkey: client.keyFile,
    });
    const { rows } = await p.query<{ ssl: boolean; client_dn: string }>(
      'SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
    );
    expect(rows).toEqual([{ ssl: true, client_dn: '/CN=postgres' }]);
  });

  it('refuses a server certificate that the sslrootcert CA did not sign, naming the setting', async () => {
    const err = await failure(
      pool({
        sslmode: 'verify-full',
        sslrootcert: otherCa.certFile,
        sslcert: client.certFile,
        sslkey: client.keyFile,
      }),
    );
    expect(err).toBeInstanceOf(PgTlsError);
    expect(err).toMatchObject({ kind: 'untrusted', code: '08001', retriable: true });
    expect((err as Error).message).toContain(
      `the certificate of PostgreSQL at 127.0.0.1:${pg.port} is not signed by the CA in ${otherCa.certFile} (sslrootcert in PG_URL)`,
    );
  });

  it('verify-full without sslrootcert checks against the system CAs, and fails for a private CA', async () => {
    const err = await failure(
      pool({ sslmode: 'verify-full', sslcert: client.certFile, sslkey: client.keyFile }),
    );
    expect(err).toBeInstanceOf(PgTlsError);
    expect((err as Error).message).toMatch(
      /a CA the system trusts \(sslrootcert in PG_URL is unset\)/,
    );
  });

  it('a client certificate from another CA is refused by the server, naming sslcert/sslkey', async () => {
    const err = await failure(
      pool({
        sslmode: 'verify-full',
        sslrootcert: ca.certFile,
        sslcert: strangerClient.certFile,
        sslkey: strangerClient.keyFile,
      }),
    );
    // TLS 1.3: the client's side of the handshake completes before the server checks the client's
    // certificate; the refusal is the server's alert (explained), or a reset when the startup
    // message crosses it.
    if (err instanceof PgTlsError) {
      expect(err).toMatchObject({ kind: 'client-certificate' });
      expect(err.message).toContain('refused our client certificate');
      expect(err.message).toContain('sslcert/sslkey in PG_URL');
    } else expect(err).toMatchObject({ code: 'ECONNRESET' });
  });

  it('without a client certificate the server refuses the login (clientcert=verify-full)', async () => {
    const err = await failure(pool({ sslmode: 'verify-full', sslrootcert: ca.certFile }));
    expect(err).toBeInstanceOf(DatabaseError);
    expect((err as Error).message).toMatch(/certificate/);
  });

  it('plaintext, the default, is refused by this server', async () => {
    const err = await failure(pool({}));
    expect(err).toBeInstanceOf(DatabaseError);
    expect((err as Error).message).toMatch(/no encryption/);
  });

  it('sslmode=require encrypts without checking the chain; with sslrootcert it checks it', async () => {
    const mtls = { sslcert: client.certFile, sslkey: client.keyFile };
    const open = pool({ sslmode: 'require', ...mtls });
    expect((await open.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    const checked = await failure(
      pool({ sslmode: 'require', sslrootcert: otherCa.certFile, ...mtls }),
    );
    expect(checked).toMatchObject({ kind: 'untrusted' });
  });

  it('an unreadable file or a downgrading mode fails the config, naming PG_URL', () => {
    const parse = (q: string) => () =>
      loadConfig(schema, { PG_URL: `postgres://postgres@127.0.0.1:${pg.port}/postgres?${q}` });
    expect(parse('sslmode=verify-full&sslrootcert=/nonexistent/ca.pem')).toThrow(ConfigError);
    expect(parse('sslmode=verify-full&sslrootcert=/nonexistent/ca.pem')).toThrow(
      /PG_URL: sslrootcert: cannot read \/nonexistent\/ca.pem/,
    );
    expect(parse('sslmode=prefer')).toThrow(/PG_URL: sslmode=prefer falls back to plaintext/);
    expect(parse(`sslrootcert=${ca.certFile}`)).toThrow(
      /PG_URL: sslrootcert is set but TLS is off/,
    );
    expect(parse(`sslmode=verify-full&sslcert=${client.certFile}`)).toThrow(
      /PG_URL: sslkey is required with sslcert/,
    );
  });
});
