import type { NatsConnection } from '@nats-io/nats-core';
import { loadConfig, type CommonConfig, type Env } from '@sluice/config';
import { topology, type Topology } from '@sluice/contracts';
import { createDeviceHasher, createLogger, startTracing, type DeviceHasher, type Logger, type Tracing } from '@sluice/observability';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { z } from 'zod';
import type { Actor } from './actor';
import { connectNats } from './connect';
import { startOpsServer, type OpsServer, type ReadinessCheck } from './ops-server';
import { runUntilSignal, type Stoppable } from './service';

/** What every service gets from {@link startRuntime}. */
export interface Runtime<C extends CommonConfig> {
  service: string;
  config: C;
  log: Logger;
  hashDeviceId: DeviceHasher;
  registry: Registry;
  nc: NatsConnection;
  /** Streams and subjects of `SLUICE_NAMESPACE` (canonical when unset). */
  topology: Topology;
  tracing: Tracing;
}

/** What `serve` needs of an actor, whatever its message type. */
export type ServedActor = Pick<Actor<unknown>, 'start' | 'stop' | 'isReady' | 'lifecycle' | 'state'>;

export interface ServeOptions {
  /** Actors: their failure stops the process (exit 1); they are drained on shutdown. */
  actors?: ReadonlyArray<ServedActor>;
  /** Stopped before the actors (e.g. an HTTP/gRPC server that accepts work). */
  before?: Stoppable[];
  /** Stopped after the actors, before NATS is drained (e.g. Redis, PostgreSQL). */
  after?: Stoppable[];
  /** Readiness checks besides NATS and the actors. */
  ready?: Record<string, ReadinessCheck>;
}

/**
 * The common start of a service, in order: config (fails fast), tracing, logger, metrics registry,
 * NATS. `main.ts` calls this, builds its parts, then {@link serve}.
 */
export async function startRuntime<S extends z.ZodType<CommonConfig & Record<string, unknown>>>(
  service: string,
  schema: S,
  /** Default `process.env` (read by @sluice/config). */
  env?: Env,
): Promise<Runtime<z.infer<S>>> {
  const config = loadConfig(schema as never, env) as z.infer<S>;
  const tracing = startTracing({
    service,
    environment: config.SLUICE_ENV,
    otlpEndpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT,
    metricsExporter: config.OTEL_METRICS_EXPORTER,
    logsExporter: config.OTEL_LOGS_EXPORTER,
    disabled: config.OTEL_SDK_DISABLED,
  });
  const hashDeviceId = createDeviceHasher(config.DEVICE_ID_HASH_KEY);
  const log = createLogger({ service, level: config.LOG_LEVEL, hashDeviceId });
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  const nc = await connectNats({ servers: config.NATS_URL, name: service, credsFile: config.NATS_CREDS, logger: log });
  const namespace = (config as { SLUICE_NAMESPACE?: string }).SLUICE_NAMESPACE ?? '';
  return { service, config, log, hashDeviceId, registry, nc, topology: topology(namespace), tracing };
}

/**
 * Starts the ops server (`/healthz`, `/readyz`, `/metrics`) and the actors, then runs until
 * SIGTERM/SIGINT or an actor fails; shutdown order: `before`, actors, `after`, ops server, NATS, tracing.
 */
export async function serve<C extends CommonConfig>(rt: Runtime<C>, opts: ServeOptions = {}): Promise<OpsServer> {
  const actors = opts.actors ?? [];
  const ops = await startOpsServer({
    port: rt.config.OPS_PORT,
    host: rt.config.OPS_HOST,
    registry: rt.registry,
    live: () => actors.every((a) => a.state !== 'failed'),
    ready: {
      nats: () => !rt.nc.isClosed() && rt.nc.info !== undefined,
      ...Object.fromEntries(actors.map((a, i) => [`actor_${i}`, () => a.isReady()])),
      ...opts.ready,
    },
  });
  await Promise.all(actors.map((a) => a.start()));
  runUntilSignal({
    logger: rt.log,
    stoppables: [
      ...(opts.before ?? []),
      ...actors.map((a, i) => ({ name: `actor_${i}`, stop: () => a.stop() })),
      ...(opts.after ?? []),
      { name: 'ops', stop: () => ops.close() },
      { name: 'nats', stop: () => rt.nc.drain() },
      { name: 'tracing', stop: () => rt.tracing.shutdown() },
    ],
    failure: Promise.race(actors.map((a) => a.lifecycle.whenFailed())),
  });
  rt.log.info({ opsPort: ops.port }, `${rt.service} running`);
  return ops;
}
