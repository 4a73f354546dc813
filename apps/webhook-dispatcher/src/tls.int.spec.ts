// The dispatcher with TLS on each of its hops, configured as a deployer would: PostgreSQL with
// sslmode=verify-full and a client certificate (a temp cluster with ssl=on that refuses plaintext),
// the shared state in a TLS-only Redis that requires client certificates (rediss://, REDIS_TLS_*),
// and the admin API over HTTPS requiring client certificates (WEBHOOK_ADMIN_TLS_*).
import { loadConfig, redisTls } from '@sluice/config';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import {
  createTestCa,
  httpsRequest,
  natsFixture,
  privateTlsPostgres,
  privateTlsRedis,
  uniqueId,
  waitFor,
  type ClientPem,
  type NatsFixture,
  type TestCa,
  type TestCertificate,
  type TlsServer,
} from '@sluice/testing';
import Redis from 'ioredis';
import { createPool } from '@sluice/pg';
import { config } from './config';
import { connectSharedRedis } from './shared-state';
import {
  startTestDispatcher,
  TEST_ADMIN_TOKEN,
  type TestDispatcher,
} from './test-fixtures/dispatcher';

describe('webhook dispatcher with TLS on every hop', () => {
  let nats: NatsFixture;
  let ca: TestCa;
  let otherCa: TestCa;
  let operator: TestCertificate;
  let stranger: TestCertificate;
  let service: TestCertificate;
  let pg: TlsServer;
  let redis: TlsServer;
  let td: TestDispatcher;
  let env: Record<string, string>;
  let adminPort: number;

  beforeAll(async () => {
    nats = await natsFixture();
    [ca, otherCa] = await Promise.all([createTestCa('sluice-test-ca'), createTestCa('other-ca')]);
    const server = await ca.server();
    operator = await ca.client('operator');
    stranger = await otherCa.client('operator');
    // clientcert=verify-full: the certificate's CN is the PostgreSQL user.
    service = await ca.client('postgres');
    const mtls = { server, clientCaFile: ca.certFile, requireClientCert: true };
    [pg, redis] = await Promise.all([privateTlsPostgres(mtls), privateTlsRedis(mtls)]);
    const pgParams = new URLSearchParams({
      sslmode: 'verify-full',
      sslrootcert: ca.certFile,
      sslcert: service.certFile,
      sslkey: service.keyFile,
    });
    env = {
      PG_URL: `postgres://postgres@127.0.0.1:${pg.port}/postgres?${pgParams}`,
      REDIS_URL: `rediss://127.0.0.1:${redis.port}`,
      REDIS_TLS_CA: ca.certFile,
      REDIS_TLS_CERT: service.certFile,
      REDIS_TLS_KEY: service.keyFile,
      WEBHOOK_ADMIN_TLS_CERT: server.certFile,
      WEBHOOK_ADMIN_TLS_KEY: server.keyFile,
      WEBHOOK_ADMIN_TLS_CA: ca.certFile,
    };
    const db = { name: 'postgres', url: env['PG_URL']!, drop: async () => undefined };
    td = await startTestDispatcher(nats, db, uniqueId('wh'), env);
    adminPort = Number(new URL(td.base).port);
  });
  afterAll(async () => {
    await td?.stop();
    await Promise.all([pg?.stop(), redis?.stop()]);
    await nats?.cleanup();
    ca?.remove();
    otherCa?.remove();
  });

  const subscriptions = (pem: ClientPem) =>
    httpsRequest(`https://127.0.0.1:${adminPort}/v1/subscriptions`, pem, {
      headers: { authorization: `Bearer ${TEST_ADMIN_TOKEN}` },
    });

  it('migrates and serves from PostgreSQL over verify-full TLS with its client certificate', async () => {
    const look = createPool({
      service: 'tls-spec',
      url: env['PG_URL']!,
      max: 1,
      log: { info: () => undefined, warn: () => undefined },
    });
    try {
      const { rows } = await look.query<{ ssl: boolean; client_dn: string | null }>(
        `SELECT s.ssl, s.client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
          WHERE a.application_name = 'webhook-dispatcher'`,
      );
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.ssl && r.client_dn === '/CN=postgres')).toBe(true);
    } finally {
      await look.end();
    }
  });

  it('keeps its shared state in the TLS-only Redis', async () => {
    expect(td.d.sharedState?.isDown()).toBe(false);
    const look = new Redis(`rediss://127.0.0.1:${redis.port}`, {
      tls: { ca: ca.cert, cert: operator.cert, key: operator.key },
      lazyConnect: true,
      maxRetriesPerRequest: 0,
    });
    try {
      await look.connect();
      expect(String(await look.client('LIST'))).toContain(' name=sluice-webhook-dispatcher ');
    } finally {
      look.disconnect();
    }
  });

  it('serves the admin API over HTTPS to client certificates of the CA only', async () => {
    const ok = await subscriptions({ ca: ca.cert, cert: operator.cert, key: operator.key });
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body!)).toEqual([]);
    const wrongCa = await subscriptions({
      ca: otherCa.cert,
      cert: operator.cert,
      key: operator.key,
    });
    // With a client CA configured, the server sends that CA along with its certificate.
    expect(wrongCa.error?.code).toBe('SELF_SIGNED_CERT_IN_CHAIN');
    for (const pem of [{ ca: ca.cert }, { ca: ca.cert, cert: stranger.cert, key: stranger.key }]) {
      const refused = await subscriptions(pem);
      expect(refused.status).toBeUndefined();
      expect(refused.error).toBeDefined();
    }
  });

  it('logs a Redis certificate its REDIS_TLS_CA did not sign, naming the variable', async () => {
    const lines: Array<{ level: string; msg: string }> = [];
    const log = createLogger({
      service: 'webhook-test',
      level: 'info',
      hashDeviceId: createDeviceHasher('test-key-0123456789'),
      destination: { write: (s: string) => void lines.push(JSON.parse(s)) } as never,
    });
    const cfg = loadConfig(config, {
      ...env,
      WEBHOOK_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      REDIS_TLS_CA: otherCa.certFile,
    });
    const { redis: conn, stoppable } = connectSharedRedis({
      url: cfg.REDIS_URL,
      tls: redisTls(cfg),
      commandTimeoutMs: 500,
      log,
    });
    let failures = 0;
    conn.on('error', () => failures++);
    try {
      await waitFor('three failed handshakes', () => failures >= 3);
      expect(lines.filter((l) => l.level === 'error').map((l) => l.msg)).toEqual([
        expect.stringContaining(
          `the certificate of Redis at 127.0.0.1:${redis.port} is not signed by the CA in ${otherCa.certFile} (REDIS_TLS_CA)`,
        ),
      ]);
    } finally {
      await stoppable.stop();
    }
  });
});
