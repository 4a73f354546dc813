// TLS to NATS (issue 20): a private nats-server speaking only TLS, with certificates of a CA made for
// this run, and one that also requires client certificates. The platform's settings (NATS_URL,
// NATS_TLS_CA, NATS_TLS_CERT, NATS_TLS_KEY) through natsOptionsOf and connectNats, as every service
// connects; a real service process started with them; and the failures an operator meets, each
// naming the setting to fix.
import { jetstreamManager } from '@nats-io/jetstream';
import { commonEnv, ConfigError, loadConfig, TlsConnectError, z } from '@sluice/config';
import {
  createTestCa,
  privateNats,
  spawnService,
  uniqueId,
  type ChildService,
  type PrivateServer,
  type TestCa,
  type TestCertificate,
} from '@sluice/testing';
import { connectNats, natsOptionsOf } from './index';

const schema = z.object(commonEnv);
const optionsOf = (env: Record<string, string>) => natsOptionsOf(loadConfig(schema, env));

describe('NATS over TLS (real nats-server, a CA of this run)', () => {
  let ca: TestCa;
  let other: TestCa;
  let server: TestCertificate;
  let client: TestCertificate;
  let foreign: TestCertificate;
  let tlsOnly: PrivateServer;
  let mutual: PrivateServer;
  const procs: ChildService[] = [];

  beforeAll(async () => {
    [ca, other] = await Promise.all([createTestCa('nats-ca'), createTestCa('other-ca')]);
    [server, client, foreign] = await Promise.all([
      ca.server(),
      ca.client('svc-a'),
      other.client('svc-x'),
    ]);
    const tls = ['--tls', '--tlscert', server.certFile, '--tlskey', server.keyFile];
    [tlsOnly, mutual] = await Promise.all([
      privateNats(tls),
      privateNats([...tls, '--tlscacert', ca.certFile, '--tlsverify']),
    ]);
  }, 60_000);

  afterAll(async () => {
    for (const p of procs) p.kill('SIGKILL');
    await Promise.all([tlsOnly?.destroy(), mutual?.destroy()]);
    ca?.remove();
    other?.remove();
  });

  it('connects with NATS_TLS_CA and carries JetStream traffic; a plaintext client is refused', async () => {
    const nc = await connectNats({
      ...optionsOf({ NATS_URL: `tls://127.0.0.1:${tlsOnly.port}`, NATS_TLS_CA: ca.certFile }),
      name: 'tls-test',
    });
    try {
      expect(nc.info!.tls_required).toBe(true);
      const jsm = await jetstreamManager(nc);
      const name = uniqueId('TLS').replace(/-/g, '_');
      await jsm.streams.add({ name, subjects: [`${name}.>`] });
      const js = jsm.jetstream();
      const ack = await js.publish(`${name}.x`, 'over tls');
      expect(ack.seq).toBe(1);
      expect((await jsm.streams.getMessage(name, { seq: 1 }))!.string()).toBe('over tls');
    } finally {
      await nc.close();
    }
    // No NATS_TLS_* and a nats:// URL: plaintext, which this server does not speak.
    await expect(
      connectNats({
        ...optionsOf({ NATS_URL: `nats://127.0.0.1:${tlsOnly.port}` }),
        name: 'plain',
        waitOnFirstConnect: false,
      }),
    ).rejects.toThrow();
  });

  it('a server certificate from another CA: TlsConnectError naming NATS_TLS_CA, not an endless wait', async () => {
    const err = await connectNats({
      ...optionsOf({ NATS_URL: `tls://127.0.0.1:${tlsOnly.port}`, NATS_TLS_CA: other.certFile }),
      name: 'wrong-ca',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TlsConnectError);
    expect((err as TlsConnectError).kind).toBe('untrusted');
    expect((err as Error).message).toMatch(/NATS_TLS_CA/);
    expect((err as Error).message).toContain(other.certFile);
  });

  it('mTLS: a client certificate of the CA gets in; none, or one of another CA, is refused naming NATS_TLS_CERT', async () => {
    const url = `tls://127.0.0.1:${mutual.port}`;
    const nc = await connectNats({
      ...optionsOf({
        NATS_URL: url,
        NATS_TLS_CA: ca.certFile,
        NATS_TLS_CERT: client.certFile,
        NATS_TLS_KEY: client.keyFile,
      }),
      name: 'mtls',
    });
    await nc.flush();
    await nc.close();
    const cases: Array<Record<string, string>> = [
      { NATS_URL: url, NATS_TLS_CA: ca.certFile },
      {
        NATS_URL: url,
        NATS_TLS_CA: ca.certFile,
        NATS_TLS_CERT: foreign.certFile,
        NATS_TLS_KEY: foreign.keyFile,
      },
    ];
    for (const env of cases) {
      const err = await connectNats({
        ...optionsOf(env),
        name: 'refused',
        waitOnFirstConnect: false,
      }).catch((e: unknown) => e);
      // The server closes the connection after the handshake: a TLS alert (explained, naming the
      // client certificate) or a timeout, never a connection.
      expect(err).toBeInstanceOf(Error);
      if (err instanceof TlsConnectError) expect(err.message).toMatch(/NATS_TLS_CERT/);
    }
  });

  it('settings are checked when parsed: a certificate without its key, an unreadable file', () => {
    expect(() =>
      optionsOf({ NATS_URL: 'tls://127.0.0.1:1', NATS_TLS_CERT: client.certFile }),
    ).toThrow(ConfigError);
    expect(() =>
      optionsOf({ NATS_URL: 'tls://127.0.0.1:1', NATS_TLS_CERT: client.certFile }),
    ).toThrow(/NATS_TLS_KEY/);
    expect(() => loadConfig(schema, { NATS_TLS_CA: '/nonexistent/ca.pem' })).toThrow(/NATS_TLS_CA/);
  });

  it('a service process starts over mTLS, and exits 1 naming NATS_TLS_CA when the CA is wrong', async () => {
    const env = (caFile: string) => ({
      NATS_URL: `tls://127.0.0.1:${mutual.port}`,
      NATS_TLS_CA: caFile,
      NATS_TLS_CERT: client.certFile,
      NATS_TLS_KEY: client.keyFile,
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      OTEL_SDK_DISABLED: 'true',
    });
    const entry = 'libs/runtime/src/test-fixtures/ordered-service.ts';
    const ok = spawnService(entry, env(ca.certFile));
    const bad = spawnService(entry, env(other.certFile));
    // No client certificate for a server that requires one: it waits, saying which settings to check.
    const { NATS_TLS_CERT: _c, NATS_TLS_KEY: _k, ...noCert } = env(ca.certFile);
    const waiting = spawnService(entry, noCert);
    procs.push(ok, bad, waiting);
    await ok.waitForLine(/ordered-test running/, 30_000);
    ok.kill('SIGTERM');
    expect(await ok.exited).toBe(0);
    expect(await bad.exited).toBe(1);
    expect(bad.lines.join('\n')).toMatch(/NATS_TLS_CA/);
    await waiting.waitForLine(/over TLS yet, retrying.*NATS_TLS_CERT\/NATS_TLS_KEY/, 30_000);
  });
});
