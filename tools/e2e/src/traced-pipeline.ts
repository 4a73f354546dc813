// The four services of a device batch's trace (gateway, dedupe, aggregator, dispatcher), each a real
// process started as `npm start` starts it, exporting spans to `otlpUrl`: what the tracing specs share.
import { createHash } from 'node:crypto';
import type { Topology } from '@sluice/contracts';
import { createTestDatabase, testUrls, type NatsFixture, type PgDatabase } from '@sluice/testing';
import { pipelineNamespace, startService, type Service } from './processes';

export interface TracedPipelineOptions {
  /** Namespace and database name prefix, e.g. `e2ejg`. */
  prefix: string;
  /** OTLP/HTTP endpoint every service exports to. */
  otlpUrl: string;
  /** The gateway's one region. */
  region: string;
  /** Accepted by the gateway for every device. */
  deviceToken: string;
  /** The dispatcher's admin token. */
  adminToken: string;
  /** Added to the aggregator's environment. Default none. */
  aggregatorEnv?: Record<string, string>;
  /** Added to the dispatcher's environment. Default none. */
  dispatcherEnv?: Record<string, string>;
}

export interface TracedPipeline {
  topo: Topology;
  /** ingestion, dedupe, aggregator, webhook-dispatcher. */
  services: Service[];
  /** The gateway's HTTP base URL. */
  ingestUrl: string;
  /** The dispatcher's admin API base URL. */
  adminUrl: string;
  /** Stops every service and drops the databases. */
  stop(): Promise<void>;
}

/** Starts the four services and resolves once each is running and listening. */
export async function startTracedPipeline(
  nats: NatsFixture,
  o: TracedPipelineOptions,
): Promise<TracedPipeline> {
  const topo = pipelineNamespace(nats, o.prefix);
  const ns = topo.namespace;
  const services: Service[] = [];
  const dbs: PgDatabase[] = [];
  const stop = async () => {
    await Promise.all(services.map((s) => s.stop()));
    await Promise.all(dbs.map((d) => d.drop()));
  };
  try {
    const [aggDb, hookDb] = await Promise.all([
      createTestDatabase(`${o.prefix}agg`),
      createTestDatabase(`${o.prefix}hook`),
    ]);
    dbs.push(aggDb, hookDb);
    const common = {
      SLUICE_NAMESPACE: ns,
      SLUICE_ENV: 'test',
      NATS_URL: testUrls.nats,
      OPS_PORT: '0',
      OPS_HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      OTEL_EXPORTER_OTLP_ENDPOINT: o.otlpUrl,
      OTEL_BSP_SCHEDULE_DELAY: '200',
    };
    const ingestion = startService('ingestion', {
      ...common,
      INGEST_HOST: '127.0.0.1',
      INGEST_HTTP_PORT: '0',
      INGEST_GRPC_PORT: '0',
      INGEST_REGIONS: o.region,
      INGEST_AUTH_TOKENS: `${createHash('sha256').update(o.deviceToken).digest('hex')}=*`,
      INGEST_DRAIN_GRACE: '200ms',
    });
    services.push(ingestion);
    services.push(
      startService('dedupe', { ...common, REDIS_URL: testUrls.redis, DEDUPE_KEY_PREFIX: `${ns}:` }),
    );
    services.push(
      startService('aggregator', {
        ...common,
        PG_URL: aggDb.url,
        AGGREGATOR_API_HOST: '127.0.0.1',
        AGGREGATOR_API_PORT: '0',
        ...o.aggregatorEnv,
      }),
    );
    const dispatcher = startService('webhook-dispatcher', {
      ...common,
      PG_URL: hookDb.url,
      WEBHOOK_ADMIN_HOST: '127.0.0.1',
      WEBHOOK_ADMIN_PORT: '0',
      WEBHOOK_ADMIN_TOKEN: o.adminToken,
      WEBHOOK_SSRF_ALLOW_CIDRS: '127.0.0.0/8',
      WEBHOOK_SUBSCRIPTION_REFRESH: '300ms',
      ...o.dispatcherEnv,
    });
    services.push(dispatcher);
    await Promise.all(services.map((s) => s.waitForLog(`${s.name} running`)));
    const httpPort = (await ingestion.waitForLog('ingestion listening'))['httpPort'];
    const adminPort = (await dispatcher.waitForLog('admin API listening'))['port'];
    return {
      topo,
      services,
      ingestUrl: `http://127.0.0.1:${String(httpPort)}`,
      adminUrl: `http://127.0.0.1:${String(adminPort)}`,
      stop,
    };
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
}
