import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import { redisTls } from '@sluice/config';
import { ensureStream } from '@sluice/jetstream';
import type { Stoppable } from '@sluice/runtime';
import { createWireParser, noTiers, parseTierRules, type Topology } from '@sluice/contracts';
import type { DeviceHasher, Logger } from '@sluice/observability';
import type { Registry } from 'prom-client';
import { Authenticator, parseInlineTokens, readTokenFile } from './auth';
import type { Config } from './config';
import { ConfigError } from '@sluice/errors';
import { GrpcGateway, type GrpcFlowStats } from './grpc-server';
import { HttpGateway } from './http-server';
import { createIngestMetrics } from './metrics';
import { IngestPipeline } from './pipeline';
import { BatchPublisher } from './publisher';
import {
  connectRateLimitRedis,
  DeviceRateLimiter,
  rateLimitPrefix,
  SharedRateLimiter,
  type RateLimiter,
} from './rate-limiter';
import { buildRoutes, parsePlacement, type RegionRoute } from './routing';
import { SamplingController } from './sampling';
import { loadTls } from './tls';
import { EventValidator } from './validator';

/** What {@link buildGateway} needs from the runtime. */
export interface GatewayDeps {
  config: Config;
  nc: NatsConnection;
  topology: Topology;
  log: Logger;
  registry: Registry;
  /** The keyed device hash: shared rate-limit keys in Redis name devices by it, never by their id. */
  hashDeviceId: DeviceHasher;
}

/** The assembled gateway: listeners started, streams provisioned. */
export interface Gateway {
  grpcPort: number;
  httpPort: number;
  routes: ReadonlyMap<string, RegionRoute>;
  publisher: BatchPublisher;
  /** Flow-control counters of the gRPC streams. */
  grpcFlow: () => GrpcFlowStats;
  /** Stops the listeners gracefully (for `serve({ before })`). */
  stoppable: Stoppable;
  /** The device rate limiter (shared in Redis, or per process). */
  limiter: RateLimiter;
  /** Adaptive sampling, when INGEST_SENSOR_TIERS names tiers. */
  sampling: SamplingController | undefined;
  /** Closes the store connections (after the listeners stopped). */
  close: Stoppable;
}

/** Builds the parts from config, provisions the raw stream(s), starts both listeners. */
export async function buildGateway(deps: GatewayDeps): Promise<Gateway> {
  const { config: c, nc, log } = deps;
  const tokens = [
    ...parseInlineTokens(c.INGEST_AUTH_TOKENS),
    ...(c.INGEST_AUTH_TOKENS_FILE ? readTokenFile(c.INGEST_AUTH_TOKENS_FILE) : []),
  ];
  const tls = loadTls(c);
  if (tokens.length === 0 && !(tls?.ca && tls.requireClientCert)) {
    throw new ConfigError(
      'INGEST_AUTH_TOKENS',
      'no way to authenticate devices: set INGEST_AUTH_TOKENS or INGEST_AUTH_TOKENS_FILE, or INGEST_TLS_CA with INGEST_TLS_REQUIRE_CLIENT_CERT=true',
    );
  }
  const maxPayload = nc.info?.max_payload;
  if (maxPayload !== undefined && c.INGEST_MAX_BATCH_BYTES + 2048 > maxPayload) {
    throw new ConfigError(
      'INGEST_MAX_BATCH_BYTES',
      `${c.INGEST_MAX_BATCH_BYTES} plus headers exceeds the NATS server's max_payload (${maxPayload})`,
    );
  }
  const { routes, streams } = buildRoutes(deps.topology, {
    regions: c.INGEST_REGIONS,
    layout: c.INGEST_STREAM_LAYOUT,
    placement: parsePlacement(c.INGEST_PLACEMENT),
    replicas: c.INGEST_STREAM_REPLICAS,
    maxAgeMs: c.INGEST_STREAM_MAX_AGE,
    duplicateWindowMs: c.INGEST_DUPLICATE_WINDOW,
    maxMsgSize: -1,
  });
  const jsm = await jetstreamManager(nc);
  for (const s of streams) await ensureStream(jsm, s);

  const metrics = createIngestMetrics(deps.registry);
  const publisher = new BatchPublisher(
    nc,
    jetstream(nc),
    jsm,
    {
      maxInFlightBytes: c.INGEST_MAX_IN_FLIGHT_BYTES,
      backpressureWaitMs: c.INGEST_BACKPRESSURE_WAIT,
      publishTimeoutMs: c.INGEST_PUBLISH_TIMEOUT,
      retryAfterMs: c.INGEST_RETRY_AFTER,
    },
    metrics,
    log,
  );
  const validator = new EventValidator(c.INGEST_REGIONS, {
    maxAttributes: c.INGEST_MAX_ATTRIBUTES,
    maxFutureSkewMs: c.INGEST_MAX_FUTURE_SKEW,
    maxAgeMs: c.INGEST_MAX_EVENT_AGE,
  });
  const local = new DeviceRateLimiter({
    ratePerSec: c.INGEST_DEVICE_RATE,
    burst: c.INGEST_DEVICE_BURST,
    maxDevices: c.INGEST_RATE_LIMIT_MAX_DEVICES,
  });
  // One bucket per device for every replica (docs/DECISIONS.md #28); per process while Redis is away.
  const store =
    c.INGEST_RATE_LIMIT_STORE === 'redis'
      ? await connectRateLimitRedis({
          url: c.REDIS_URL,
          tls: redisTls(c),
          log,
          commandTimeoutMs: c.INGEST_RATE_LIMIT_TIMEOUT,
          readyWaitMs: 5_000,
        })
      : undefined;
  const limiter: RateLimiter = store
    ? new SharedRateLimiter({
        redis: store.redis,
        prefix: rateLimitPrefix(deps.topology.namespace),
        hashDeviceId: deps.hashDeviceId,
        ratePerSec: c.INGEST_DEVICE_RATE,
        burst: c.INGEST_DEVICE_BURST,
        leaseMs: c.INGEST_RATE_LIMIT_LEASE,
        maxLeases: c.INGEST_RATE_LIMIT_MAX_DEVICES,
        local,
        metrics,
        log,
      })
    : local;
  const rules = parseTierRules(c.INGEST_SENSOR_TIERS);
  const sampling = noTiers(rules)
    ? undefined
    : new SamplingController(
        {
          rules,
          enter: c.INGEST_OVERLOAD_ENTER,
          exit: c.INGEST_OVERLOAD_EXIT,
          sustainMs: c.INGEST_OVERLOAD_SUSTAIN,
          publishLatencyMs: c.INGEST_OVERLOAD_PUBLISH_LATENCY,
          minKeep: c.INGEST_SAMPLING_MIN_KEEP,
          diagnosticMinKeep: c.INGEST_SAMPLING_DIAGNOSTIC_MIN_KEEP,
        },
        publisher,
        deps.registry,
        log,
      );
  const advice = sampling ? () => sampling.advice : undefined;
  const pipeline = new IngestPipeline({
    validator,
    routes,
    limiter,
    publisher,
    metrics,
    maxBatchEvents: c.INGEST_MAX_BATCH_EVENTS,
    maxBatchBytes: c.INGEST_MAX_BATCH_BYTES,
    sampling,
    shedBulk: c.INGEST_SHED_BULK,
  });
  const auth = new Authenticator(tokens);
  const grpc = new GrpcGateway({
    host: c.INGEST_HOST,
    port: c.INGEST_GRPC_PORT,
    pipeline,
    auth,
    metrics,
    log,
    maxBatchBytes: c.INGEST_MAX_BATCH_BYTES,
    streamMaxPending: c.INGEST_STREAM_MAX_PENDING,
    streamMaxUnsentAckBytes: c.INGEST_STREAM_MAX_UNSENT_ACK_BYTES,
    maxStreamsPerCredential: c.INGEST_MAX_STREAMS_PER_CREDENTIAL,
    maxStreams: c.INGEST_MAX_STREAMS,
    streamStallTimeoutMs: c.INGEST_STREAM_STALL_TIMEOUT,
    retryAfterMs: c.INGEST_RETRY_AFTER,
    tls,
    reflection: c.INGEST_REFLECTION,
    advice,
  });
  const http = new HttpGateway({
    host: c.INGEST_HOST,
    port: c.INGEST_HTTP_PORT,
    pipeline,
    parser: createWireParser({ limits: { maxAttributes: c.INGEST_MAX_ATTRIBUTES } }),
    auth,
    metrics,
    log,
    maxBodyBytes: c.INGEST_MAX_BODY_BYTES,
    maxDiscardBytes: c.INGEST_MAX_DISCARD_BYTES,
    retryAfterMs: c.INGEST_RETRY_AFTER,
    tls,
    advice,
  });
  sampling?.start();
  const grpcPort = await grpc.start();
  const httpPort = await http.start();
  log.info(
    {
      grpcPort,
      httpPort,
      regions: c.INGEST_REGIONS,
      streams: streams.map((s) => s.name),
      tokens: auth.tokenCount,
      tls: Boolean(tls),
      rateLimits: store ? 'redis' : 'local',
      sampling: sampling ? c.INGEST_SENSOR_TIERS : 'off',
    },
    'ingestion listening',
  );
  return {
    grpcPort,
    httpPort,
    routes,
    publisher,
    grpcFlow: () => grpc.flowStats,
    stoppable: {
      name: 'ingestion-listeners',
      stop: async () => {
        await Promise.all([grpc.drain(c.INGEST_DRAIN_GRACE), http.drain()]);
        sampling?.stop();
        log.info('ingestion listeners drained');
      },
    },
    limiter,
    sampling,
    close: { name: 'redis', stop: async () => store?.stoppable.stop() },
  };
}
