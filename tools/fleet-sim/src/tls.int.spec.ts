// fleet-sim --ca against the real gateway serving TLS (a CA made for this run): gRPC and HTTPS
// deliver when the simulator trusts the gateway's CA, and nothing is accepted under another CA.
import {
  createTestCa,
  freePort,
  natsFixture,
  type NatsFixture,
  type TestCa,
} from '@sluice/testing';
// eslint-disable-next-line @nx/enforce-module-boundaries -- the device SDK's test gateway (a child process of apps/ingestion)
import { gatewayChild, TEST_TOKEN, type GatewayChild } from '../../../libs/device-sdk/src/testing';
import { runFleet } from './run';

describe('fleet-sim --ca against the gateway on TLS', () => {
  let nats: NatsFixture;
  let ca: TestCa;
  let other: TestCa;
  let g: GatewayChild;
  let httpPort: number;

  beforeAll(async () => {
    nats = await natsFixture();
    [ca, other] = await Promise.all([createTestCa('fleet-sim-ca'), createTestCa('unrelated-ca')]);
    const server = await ca.server();
    httpPort = await freePort();
    g = await gatewayChild(nats, {
      INGEST_HTTP_PORT: String(httpPort),
      INGEST_TLS_CERT: server.certFile,
      INGEST_TLS_KEY: server.keyFile,
    });
    await g.start();
  });
  afterAll(async () => {
    await g?.stop('SIGKILL');
    await nats.cleanup();
    ca?.remove();
    other?.remove();
  });

  const run = (transport: 'grpc' | 'http', caFile: string) =>
    runFleet({
      transport,
      target: transport === 'grpc' ? g.target : `https://127.0.0.1:${httpPort}`,
      token: TEST_TOKEN,
      caFile,
      seconds: 1.5,
      connections: 2,
      fleet: {
        devices: 3,
        sensorsPerDevice: 1,
        minHz: 5,
        maxHz: 5,
        cameraFraction: 0,
        regions: ['eu-west'],
        flushMs: 50,
        seed: 3,
      },
    });

  it.each(['grpc', 'http'] as const)(
    '%s: delivers when it trusts the CA, not otherwise',
    async (transport) => {
      const trusted = await run(transport, ca.certFile);
      expect(trusted.events_accepted).toBeGreaterThan(0);
      expect(trusted.failures).toBe(0);

      const untrusted = await run(transport, other.certFile);
      // The simulator tried: over HTTPS each request fails its handshake; over gRPC the channel never
      // becomes ready, so every batch is skipped (none is written to an unverified peer).
      expect(untrusted.events_sent + untrusted.skipped).toBeGreaterThan(0);
      expect(untrusted.batches_acked).toBe(0);
      expect(untrusted.events_accepted).toBe(0);
    },
    60_000,
  );
});
