import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConfigError,
  loadConfig,
  mongoUrl,
  parsePgTls,
  pemFile,
  readClientTls,
  readServerTls,
  tlsFailureOf,
  TlsConnectError,
  z,
} from './index';

describe('TLS settings', () => {
  let dir: string;
  let cert: string;
  let key: string;
  let notPem: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-tls-spec-'));
    cert = join(dir, 'cert.pem');
    key = join(dir, 'key.pem');
    notPem = join(dir, 'notes.txt');
    writeFileSync(cert, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    writeFileSync(key, '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n');
    writeFileSync(notPem, 'hello');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const setting = (variable: string, path?: string) => ({ variable, path });
  const configError = (fn: () => unknown): ConfigError => {
    try {
      fn();
    } catch (err) {
      if (err instanceof ConfigError) return err;
      throw err;
    }
    throw new Error('no ConfigError');
  };

  it('a PEM file variable must be readable PEM when the config is parsed', () => {
    const schema = z.object({ X_TLS_CA: pemFile() });
    expect(loadConfig(schema, {}).X_TLS_CA).toBeUndefined();
    expect(loadConfig(schema, { X_TLS_CA: cert }).X_TLS_CA).toBe(cert);
    expect(
      configError(() => loadConfig(schema, { X_TLS_CA: join(dir, 'missing') })).issues,
    ).toEqual([
      { variable: 'X_TLS_CA', reason: expect.stringMatching(/^cannot read .*missing: ENOENT/) },
    ]);
    expect(configError(() => loadConfig(schema, { X_TLS_CA: notPem })).issues[0]!.reason).toMatch(
      /is not a PEM file/,
    );
  });

  it('a listener is plaintext without files, and needs certificate and key together', () => {
    const s = (c?: string, k?: string, ca?: string) => ({
      cert: setting('API_TLS_CERT', c),
      key: setting('API_TLS_KEY', k),
      ca: setting('API_TLS_CA', ca),
    });
    expect(readServerTls(s())).toBeUndefined();
    expect(configError(() => readServerTls(s(cert))).variable).toBe('API_TLS_KEY');
    expect(configError(() => readServerTls(s(undefined, key))).variable).toBe('API_TLS_CERT');
    expect(configError(() => readServerTls(s(undefined, undefined, cert))).message).toMatch(
      /API_TLS_CA: needs API_TLS_CERT and API_TLS_KEY/,
    );
    expect(readServerTls(s(cert, key))).toMatchObject({
      requestCert: false,
      rejectUnauthorized: false,
    });
    expect(readServerTls(s(cert, key, cert))).toMatchObject({
      requestCert: true,
      rejectUnauthorized: true,
    });
  });

  it('a client certificate needs its key; an unreadable file names its variable', () => {
    const s = (ca?: string, c?: string, k?: string) => ({
      ca: setting('REDIS_TLS_CA', ca),
      cert: setting('REDIS_TLS_CERT', c),
      key: setting('REDIS_TLS_KEY', k),
    });
    expect(readClientTls(s())).toEqual({});
    expect(Object.keys(readClientTls(s(cert, cert, key)))).toEqual(['ca', 'cert', 'key']);
    expect(configError(() => readClientTls(s(undefined, cert))).variable).toBe('REDIS_TLS_KEY');
    expect(configError(() => readClientTls(s(join(dir, 'gone.pem')))).variable).toBe(
      'REDIS_TLS_CA',
    );
  });

  it("reads libpq's TLS parameters of a PostgreSQL URL and strips them", () => {
    expect(parsePgTls('postgres://u@db:5432/x')).toEqual({
      settings: { sslmode: 'disable', url: 'postgres://u@db:5432/x' },
    });
    expect(
      parsePgTls(
        `postgres://u:p%40ss@db:5432/x?application_name=a&sslmode=verify-full&sslrootcert=${cert}`,
      ),
    ).toEqual({
      settings: {
        sslmode: 'verify-full',
        sslrootcert: cert,
        sslcert: undefined,
        sslkey: undefined,
        url: 'postgres://u:p%40ss@db:5432/x?application_name=a',
      },
    });
    expect(parsePgTls('postgres://db/x?ssl=true')).toEqual({
      problems: ['use sslmode=disable|require|verify-ca|verify-full instead of ssl='],
    });
    expect(parsePgTls('postgres://db/x?sslmode=verify')).toEqual({
      problems: ['sslmode=verify is not one of disable, require, verify-ca, verify-full'],
    });
  });

  it("checks a MongoDB URL's TLS files and that TLS is on", () => {
    const schema = z.object({ MONGO_URL: mongoUrl() });
    const parse = (q: string) => () => loadConfig(schema, { MONGO_URL: `mongodb://m:27017/?${q}` });
    expect(parse(`tls=true&tlsCAFile=${cert}`)()).toBeDefined();
    expect(parse(`tlsCAFile=${cert}`)).toThrow(/MONGO_URL: tlsCAFile is set but TLS is off/);
    expect(parse(`tls=true&tlsCAFile=${dir}/none.pem`)).toThrow(
      /MONGO_URL: tlsCAFile: cannot read/,
    );
    expect(parse(`tls=true&tlsCertificateKeyFile=${cert}`)).toThrow(
      /must hold the client certificate and its private key/,
    );
    expect(
      loadConfig(schema, { MONGO_URL: `mongodb+srv://m.example.com/?tlsCAFile=${cert}` }),
    ).toBeDefined();
  });

  it('finds a TLS failure in an error or its causes and names the settings to fix', () => {
    const untrusted = Object.assign(new Error('self-signed certificate in certificate chain'), {
      code: 'SELF_SIGNED_CERT_IN_CHAIN',
    });
    const wrapped = new Error('connection failed', { cause: untrusted });
    expect(tlsFailureOf(wrapped)).toMatchObject({ kind: 'untrusted' });
    expect(tlsFailureOf(Object.assign(new Error('x'), { code: 'ECONNREFUSED' }))).toBeUndefined();
    const alert = Object.assign(
      new Error(
        'C0:error:0A000418:SSL routines:ssl3_read_bytes:tlsv1 alert unknown ca:../ssl/rec_layer_s3.c:918:',
      ),
      { code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA' },
    );
    expect(tlsFailureOf(alert)).toEqual({
      kind: 'client-certificate',
      code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
      message: 'tlsv1 alert unknown ca',
    });
    const err = TlsConnectError.from(wrapped, {
      peer: 'Redis at r:6380',
      ca: 'REDIS_TLS_CA',
      caFile: '/etc/ca.pem',
      clientCert: 'REDIS_TLS_CERT/REDIS_TLS_KEY',
    });
    expect(err?.message).toBe(
      "the certificate of Redis at r:6380 is not signed by the CA in /etc/ca.pem (REDIS_TLS_CA) (SELF_SIGNED_CERT_IN_CHAIN: self-signed certificate in certificate chain); set REDIS_TLS_CA to the CA that signed the server's certificate",
    );
    expect(err?.retriable).toBe(true);
  });
});
