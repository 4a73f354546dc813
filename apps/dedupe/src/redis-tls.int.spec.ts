// Dedupe's claim connection over TLS, configured as a deployer would (REDIS_URL=rediss://…,
// REDIS_TLS_*), against a real redis-server started by this file that listens only with TLS and
// requires client certificates (--port 0 --tls-port … --tls-auth-clients yes).
import { ConfigError, loadConfig, redisTls } from '@sluice/config';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import {
  createTestCa,
  privateTlsRedis,
  waitFor,
  type TestCa,
  type TestCertificate,
  type TlsServer,
} from '@sluice/testing';
import type Redis from 'ioredis';
import { config } from './config';
import { connectRedis } from './redis';

function capturingLogger() {
  const lines: Array<{ level: string; msg: string }> = [];
  const log = createLogger({
    service: 'dedupe-test',
    level: 'info',
    hashDeviceId: createDeviceHasher('test-key-0123456789'),
    destination: { write: (s: string) => void lines.push(JSON.parse(s)) } as never,
  });
  return { log, errors: () => lines.filter((l) => l.level === 'error').map((l) => l.msg) };
}

describe('dedupe Redis over TLS', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let client: TestCertificate;
  let stranger: TestCertificate;
  let server: TlsServer;
  const stops: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    [ca, otherCa] = await Promise.all([createTestCa('sluice-test-ca'), createTestCa('other-ca')]);
    client = await ca.client('dedupe');
    stranger = await otherCa.client('dedupe');
    server = await privateTlsRedis({
      server: await ca.server(),
      clientCaFile: ca.certFile,
      requireClientCert: true,
    });
  });
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });
  afterAll(async () => {
    await server?.stop();
    ca?.remove();
    otherCa?.remove();
  });

  /** Dedupe's connection from `env` (on top of REDIS_URL=rediss://<the TLS server>). */
  function connect(env: Record<string, string>) {
    const cfg = loadConfig(config, { REDIS_URL: `rediss://127.0.0.1:${server.port}`, ...env });
    const { log, errors } = capturingLogger();
    const { redis, stoppable } = connectRedis({
      url: cfg.REDIS_URL,
      tls: redisTls(cfg),
      commandTimeoutMs: 500,
      log,
    });
    stops.push(() => stoppable.stop());
    let failures = 0;
    redis.on('error', () => failures++);
    return { redis, errors, failures: () => failures };
  }

  /** Waits for several failed handshakes (reconnects) and returns the errors logged meanwhile. */
  async function failingTls(c: ReturnType<typeof connect>): Promise<string[]> {
    await waitFor('three failed connection attempts', () => c.failures() >= 3);
    expect(c.redis.status).not.toBe('ready');
    return c.errors();
  }

  it('claims over mTLS with the CA and a client certificate', async () => {
    const { redis } = connect({
      REDIS_TLS_CA: ca.certFile,
      REDIS_TLS_CERT: client.certFile,
      REDIS_TLS_KEY: client.keyFile,
    });
    await waitFor('redis ready', () => (redis as Redis).status === 'ready');
    expect(await redis.set('tls-spec', 'claimed', 'EX', 60, 'NX')).toBe('OK');
    expect(await redis.get('tls-spec')).toBe('claimed');
    const clients = await redis.client('LIST');
    expect(clients).toContain('name=sluice-dedupe');
  });

  it('refuses a server certificate the REDIS_TLS_CA did not sign, logged once naming it', async () => {
    const errors = await failingTls(
      connect({
        REDIS_TLS_CA: otherCa.certFile,
        REDIS_TLS_CERT: client.certFile,
        REDIS_TLS_KEY: client.keyFile,
      }),
    );
    expect(errors).toEqual([
      expect.stringContaining(
        `the certificate of Redis at 127.0.0.1:${server.port} is not signed by the CA in ${otherCa.certFile} (REDIS_TLS_CA)`,
      ),
    ]);
  });

  it('is refused by a server that requires client certificates: one of another CA, or none', async () => {
    // TLS 1.3: the client's side of the handshake completes before the server checks the client's
    // certificate, so the refusal arrives either as the server's alert (explained and logged) or,
    // when the client's first command crosses it, as a plain connection reset.
    const clientCerts: Array<Record<string, string>> = [
      { REDIS_TLS_CERT: stranger.certFile, REDIS_TLS_KEY: stranger.keyFile },
      {},
    ];
    for (const env of clientCerts) {
      const errors = await failingTls(connect({ REDIS_TLS_CA: ca.certFile, ...env }));
      for (const e of errors)
        expect(e).toMatch(
          new RegExp(
            `^Redis at 127.0.0.1:${server.port} refused our client certificate .*; set REDIS_TLS_CERT/REDIS_TLS_KEY`,
          ),
        );
    }
  });

  it('config errors name the variable', () => {
    const fail = (env: Record<string, string>): ConfigError => {
      try {
        redisTls(loadConfig(config, env));
      } catch (err) {
        if (err instanceof ConfigError) return err;
        throw err;
      }
      throw new Error('accepted');
    };
    expect(fail({ REDIS_TLS_CA: ca.certFile }).message).toMatch(
      /REDIS_TLS_CA: needs a rediss:\/\/ REDIS_URL/,
    );
    expect(
      fail({ REDIS_URL: 'rediss://127.0.0.1:1', REDIS_TLS_CERT: client.certFile }).message,
    ).toMatch(/REDIS_TLS_KEY: is required with REDIS_TLS_CERT/);
    expect(
      fail({ REDIS_URL: 'rediss://127.0.0.1:1', REDIS_TLS_CA: '/nonexistent/ca.pem' }).message,
    ).toMatch(/REDIS_TLS_CA: cannot read \/nonexistent\/ca.pem/);
  });
});
