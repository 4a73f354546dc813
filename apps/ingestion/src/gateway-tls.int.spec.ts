// The gateway's listeners over TLS with real clients: gRPC (grpc-js, HTTP/2) and HTTPS POST
// /v1/events (node:https). One gateway with TLS and bearer tokens; one that requires client
// certificates (mTLS, the certificate's CN is the device), whose shared rate limits live in a
// TLS-only Redis that also requires client certificates (REDIS_URL=rediss://…, REDIS_TLS_*).
import { credentials, status as GrpcStatus } from '@grpc/grpc-js';
import { IngestServiceClient, IngestStatus } from '@sluice/contracts';
import {
  createTestCa,
  httpsRequest,
  natsFixture,
  privateTlsRedis,
  uniqueId,
  type ClientPem,
  type NatsFixture,
  type TestCa,
  type TestCertificate,
  type TlsServer,
} from '@sluice/testing';
import Redis from 'ioredis';
import { sha256Hex } from './auth';
import { telemetry, unary } from './test-fixtures/client';
import { startTestGateway, type TestGateway } from './test-fixtures/gateway';

const DEVICE_TOKEN = 'device-token-boat-17';
const TOKENS = `${sha256Hex(DEVICE_TOKEN)}=boat-17`;

/** A gRPC client trusting `pem.ca`, presenting `pem.cert` when given. */
function tlsClient(port: number, pem: ClientPem): IngestServiceClient {
  const buf = (s: string | undefined) => (s === undefined ? null : Buffer.from(s));
  return new IngestServiceClient(
    `127.0.0.1:${port}`,
    credentials.createSsl(buf(pem.ca), buf(pem.key), buf(pem.cert)),
  );
}

/** POST one reading of boat-17 to /v1/events over HTTPS: the status, or the connection's error. */
async function post(port: number, pem: ClientPem, token?: string) {
  const body = JSON.stringify({
    event_id: uniqueId('h'),
    device_id: 'boat-17',
    timestamp: new Date().toISOString(),
    sensor_type: 'engine_temp',
    value: 1,
    unit: 'celsius',
    region: 'eu-west',
  });
  const { status, error } = await httpsRequest(`https://127.0.0.1:${port}/v1/events`, pem, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body,
  });
  return error ? { error } : { status };
}

describe('ingestion gateway over TLS', () => {
  let nats: NatsFixture;
  let ca: TestCa;
  let otherCa: TestCa;
  let device: TestCertificate;
  let stranger: TestCertificate;
  let redisServer: TlsServer;
  let tlsGw: TestGateway;
  let mtlsGw: TestGateway;
  const clients: IngestServiceClient[] = [];

  beforeAll(async () => {
    nats = await natsFixture();
    [ca, otherCa] = await Promise.all([createTestCa('sluice-test-ca'), createTestCa('other-ca')]);
    const server = await ca.server();
    device = await ca.client('boat-17');
    stranger = await otherCa.client('boat-17');
    const gatewayToRedis = await ca.client('ingestion');
    redisServer = await privateTlsRedis({
      server,
      clientCaFile: ca.certFile,
      requireClientCert: true,
    });
    const listenerTls = { INGEST_TLS_CERT: server.certFile, INGEST_TLS_KEY: server.keyFile };
    tlsGw = await startTestGateway(nats, TOKENS, {
      ...listenerTls,
      INGEST_RATE_LIMIT_STORE: 'local',
    });
    mtlsGw = await startTestGateway(nats, '', {
      ...listenerTls,
      INGEST_TLS_CA: ca.certFile,
      INGEST_TLS_REQUIRE_CLIENT_CERT: 'true',
      INGEST_RATE_LIMIT_STORE: 'redis',
      REDIS_URL: `rediss://127.0.0.1:${redisServer.port}`,
      REDIS_TLS_CA: ca.certFile,
      REDIS_TLS_CERT: gatewayToRedis.certFile,
      REDIS_TLS_KEY: gatewayToRedis.keyFile,
    });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });
  afterAll(async () => {
    await tlsGw?.stop();
    await mtlsGw?.stop();
    await redisServer?.stop();
    await nats?.cleanup();
    ca?.remove();
    otherCa?.remove();
  });

  const grpc = (port: number, pem: ClientPem) => {
    const c = tlsClient(port, pem);
    clients.push(c);
    return c;
  };
  const batch = () => ({
    batchId: uniqueId('b'),
    events: [telemetry(uniqueId('e'), 'boat-17', 'eu-west')],
  });

  it('TLS: a gRPC client trusting the CA is served; one trusting another CA is not', async () => {
    const ok = await unary(grpc(tlsGw.gw.grpcPort, { ca: ca.cert }), batch(), DEVICE_TOKEN);
    expect(ok.ack?.status).toBe(IngestStatus.OK);
    const wrong = await unary(grpc(tlsGw.gw.grpcPort, { ca: otherCa.cert }), batch(), DEVICE_TOKEN);
    expect(wrong.error?.code).toBe(GrpcStatus.UNAVAILABLE);
    expect(wrong.error?.message).toMatch(/unable to verify the first certificate/);
  });

  it('TLS: HTTPS POST is served to a client trusting the CA; another CA fails the handshake', async () => {
    expect(await post(tlsGw.gw.httpPort, { ca: ca.cert }, DEVICE_TOKEN)).toEqual({ status: 200 });
    const wrong = await post(tlsGw.gw.httpPort, { ca: otherCa.cert }, DEVICE_TOKEN);
    expect(wrong.error?.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });

  it('mTLS: a device certificate from the CA is the credential, on both transports', async () => {
    const mine = { ca: ca.cert, cert: device.cert, key: device.key };
    const ok = await unary(grpc(mtlsGw.gw.grpcPort, mine), batch());
    expect(ok.ack?.status).toBe(IngestStatus.OK);
    expect(await post(mtlsGw.gw.httpPort, mine)).toEqual({ status: 200 });
    // The certificate names the device: it may not publish for another one.
    const other = await unary(grpc(mtlsGw.gw.grpcPort, mine), {
      batchId: uniqueId('b'),
      events: [telemetry(uniqueId('e'), 'boat-18', 'eu-west')],
    });
    expect(other.ack?.status).toBe(IngestStatus.REJECTED);
  });

  it('mTLS: no client certificate, or one from another CA, is refused on both transports', async () => {
    for (const pem of [{ ca: ca.cert }, { ca: ca.cert, cert: stranger.cert, key: stranger.key }]) {
      const g = await unary(grpc(mtlsGw.gw.grpcPort, pem), batch(), DEVICE_TOKEN);
      expect(g.error?.code).toBe(GrpcStatus.UNAVAILABLE);
      const h = await post(mtlsGw.gw.httpPort, pem, DEVICE_TOKEN);
      expect(h.status).toBeUndefined();
      expect(h.error).toBeDefined();
    }
  });

  it('mTLS: the shared rate limits are kept in the TLS-only Redis', async () => {
    const mine = { ca: ca.cert, cert: device.cert, key: device.key };
    expect((await unary(grpc(mtlsGw.gw.grpcPort, mine), batch())).ack?.status).toBe(
      IngestStatus.OK,
    );
    const look = new Redis(`rediss://127.0.0.1:${redisServer.port}`, {
      tls: { ca: ca.cert, cert: device.cert, key: device.key },
      lazyConnect: true,
      maxRetriesPerRequest: 0,
    });
    try {
      await look.connect();
      // The gateway's connection ran the rate-limit script last (its bucket key expires as soon
      // as the bucket is full again, which one event barely dents).
      const gateway = String(await look.client('LIST'))
        .split('\n')
        .find((l) => l.includes(' name=sluice-ingestion '));
      expect(gateway).toMatch(/ cmd=(eval|evalsha) /);
    } finally {
      look.disconnect();
    }
  });
});
