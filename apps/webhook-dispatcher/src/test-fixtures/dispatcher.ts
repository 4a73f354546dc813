// Test helper: the whole dispatcher in-process (matchers, sender, admin API) on a real NATS and
// PostgreSQL database, in its own namespace.
import { loadConfig } from '@sluice/config';
import { topology, type Topology } from '@sluice/contracts';
import { createDeviceHasher, createLogger } from '@sluice/observability';
import type { NatsFixture, PgDatabase } from '@sluice/testing';
import { Registry } from 'prom-client';
import { config as configSchema } from '../config';
import { createDispatcher, type Dispatcher } from '../dispatcher';

const logger = createLogger({
  service: 'webhook-test',
  level: 'silent',
  hashDeviceId: createDeviceHasher('test-key-0123456789'),
});

/** The admin API's bearer token in these tests. */
export const TEST_ADMIN_TOKEN = 'test-admin-token-0123456789';

export interface TestDispatcher {
  d: Dispatcher;
  topo: Topology;
  /** The admin API's base URL. */
  base: string;
  /** The dispatcher's metrics. */
  registry: Registry;
  /** Stops the actors and closes everything the dispatcher opened. */
  stop(): Promise<void>;
}

/**
 * Starts a dispatcher in namespace `ns` with a loopback SSRF allowance, no retry jitter and `extra`
 * settings on top; its streams are tracked by `nats` for cleanup.
 */
export async function startTestDispatcher(
  nats: NatsFixture,
  db: PgDatabase,
  ns: string,
  extra: Record<string, string> = {},
): Promise<TestDispatcher> {
  const topo = topology(ns);
  const prefix = ns.toUpperCase().replace(/-/g, '_');
  for (const s of [
    topo.streams.clean.name,
    topo.streams.rollups.name,
    topo.streams.dlq.name,
    `${prefix}_WEBHOOK_DELIVERIES`,
    `${prefix}_WEBHOOK_OPS`,
    `${prefix}_ALERTS`,
  ])
    nats.track(s);
  const config = loadConfig(configSchema, {
    SLUICE_NAMESPACE: ns,
    PG_URL: db.url,
    WEBHOOK_ADMIN_PORT: '0',
    WEBHOOK_ADMIN_HOST: '127.0.0.1',
    WEBHOOK_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    WEBHOOK_RETRY_JITTER: '0',
    WEBHOOK_REQUEST_TIMEOUT: '4s',
    WEBHOOK_SSRF_ALLOW_CIDRS: '127.0.0.0/8',
    WEBHOOK_SUBSCRIPTION_REFRESH: '500ms',
    ...extra,
  });
  const registry = new Registry();
  const d = createDispatcher({ config, nc: nats.nc, topology: topo, log: logger, registry });
  try {
    await d.prepare();
  } catch (err) {
    await d.close();
    throw err;
  }
  const base = `http://127.0.0.1:${(await d.startAdmin()).port}`;
  await Promise.all([d.clean.start(), d.rollups.start(), d.sender.start()]);
  return {
    d,
    topo,
    base,
    registry,
    async stop() {
      await Promise.all([d.clean.stop(5_000), d.rollups.stop(5_000), d.sender.stop(5_000)]);
      await d.close();
    },
  };
}

/** One admin API request with the test token; the JSON body of the answer, if any. */
export async function adminApi(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: any }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TEST_ADMIN_TOKEN}`,
      ...(body ? { 'content-type': 'application/json' } : {}),
    },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined };
}
