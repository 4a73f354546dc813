// Test helper: a real gateway on loopback ports, against a real NATS, in its own namespace.
import type { NatsConnection } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats } from '@sluice/jetstream';
import { loadConfig } from '@sluice/config';
import { topology, type IngestServiceClient, type Topology } from '@sluice/contracts';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import { testUrls, uniqueId, type NatsFixture } from '@sluice/testing';
import { Registry } from 'prom-client';
import { config as configSchema } from '../config';
import { buildGateway, type Gateway } from '../gateway';
import { client } from './client';

const hashDeviceId = createDeviceHasher('test-key-0123456789');
const log = createLogger({ service: 'ingestion-test', level: 'silent', hashDeviceId });

export interface TestGateway {
  ns: string;
  t: Topology;
  gw: Gateway;
  /** A gRPC client of the gateway. */
  c: IngestServiceClient;
  nc: NatsConnection;
  registry: Registry;
  /** Closes the client, stops the gateway (deleting its streams on a NATS other than the fixture's). */
  stop(): Promise<void>;
}

/**
 * The environment of a test gateway in namespace `ns`: loopback, ports picked by the system,
 * `eu-west,us-east` on per-region streams, `tokens` as its credentials, `extra` on top.
 */
export function gatewayEnv(
  ns: string,
  tokens: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    SLUICE_NAMESPACE: ns,
    INGEST_GRPC_PORT: '0',
    INGEST_HTTP_PORT: '0',
    INGEST_HOST: '127.0.0.1',
    INGEST_REGIONS: 'eu-west,us-east',
    INGEST_STREAM_LAYOUT: 'per-region',
    INGEST_AUTH_TOKENS: tokens,
    INGEST_DRAIN_GRACE: '200ms',
    ...extra,
  };
}

/**
 * Starts a gateway serving `eu-west,us-east` with per-region streams, `tokens` as its credentials
 * and `extra` on top of that. Its streams are tracked by `nats` for cleanup when it is the shared
 * test NATS; on any other `natsUrl` they are deleted by `stop()`.
 */
export async function startTestGateway(
  nats: NatsFixture,
  tokens: string,
  extra: Record<string, string> = {},
  natsUrl = testUrls.nats,
): Promise<TestGateway> {
  const ns = uniqueId('ing');
  const t = topology(ns);
  const config = loadConfig(configSchema, { NATS_URL: natsUrl, ...gatewayEnv(ns, tokens, extra) });
  const nc = await connectNats({ servers: natsUrl, name: 'ingestion-test' });
  const registry = new Registry();
  const gw = await buildGateway({ config, nc, topology: t, log, registry, hashDeviceId });
  const c = client(gw.grpcPort);
  const shared = natsUrl === testUrls.nats;
  if (shared) for (const r of gw.routes.values()) nats.track(r.stream);
  return {
    ns,
    t,
    gw,
    c,
    nc,
    registry,
    async stop() {
      c.close();
      await gw.stoppable.stop();
      await gw.close.stop();
      if (!shared) {
        const jsm = await jetstreamManager(nc);
        for (const r of gw.routes.values())
          await jsm.streams.delete(r.stream).catch(() => undefined);
      }
      await nc.drain();
    },
  };
}
