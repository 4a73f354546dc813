import type { NatsConnection } from '@nats-io/nats-core';
import { loadConfig, regionalDeploymentOf, type CommonConfig, type Env } from '@sluice/config';
import { topology, type Topology } from '@sluice/contracts';
import { connectNats, natsOptionsOf } from '@sluice/jetstream';
import {
  createDeviceHasher,
  createLogger,
  startTracing,
  type DeviceHasher,
  type Logger,
  type Tracing,
} from '@sluice/observability';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { z } from 'zod';
import type { Lifecycle, LifecycleState } from './lifecycle';
import { startOpsServer, type OpsServer, type ReadinessCheck } from './ops-server';
import { runUntilSignal, type Stoppable } from './signals';

/** What every service gets from {@link startRuntime}: the dependencies `createService` receives. */
export interface Runtime<C extends CommonConfig> {
  service: string;
  config: C;
  log: Logger;
  hashDeviceId: DeviceHasher;
  /** The process's one Prometheus registry (default label `service`), served on `/metrics`. */
  registry: Registry;
  nc: NatsConnection;
  /**
   * Streams and subjects of `SLUICE_NAMESPACE` (canonical when unset); with `SLUICE_REGION`, those of
   * that region's deployment (its own placed clean and roll-up streams).
   */
  topology: Topology;
  tracing: Tracing;
}

/** A long-running consumer the runtime starts, drains on shutdown and watches for failure (an Actor). */
export interface ServedActor {
  start(): Promise<void>;
  stop(): Promise<void>;
  isReady(): boolean;
  readonly state: LifecycleState;
  readonly lifecycle: Lifecycle;
}

/** A server that accepts work (an HTTP API, the gRPC gateway): started after `prepare`, stopped first. */
export interface ServedServer {
  name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Where it listens, for the start-up log line (e.g. `{ apiPort: 9480 }`). */
  describe?(): Record<string, unknown>;
}

/**
 * What a service is made of, returned by its `createService(runtime)`. The runtime runs it in this
 * order: `prepare`, servers, actors, `started`; and stops it in reverse: servers (no new work),
 * `background`, actors (drained), `close` (stores), ops server, NATS, tracing.
 */
export interface Service {
  /** One-time preparation before anything is served: migrations, stream provisioning. Default none. */
  prepare?(): Promise<void>;
  /** Servers that accept work. Default none. */
  servers?: ReadonlyArray<ServedServer>;
  /** Consumers; the failure of one stops the process (exit 1). Default none. */
  actors?: ReadonlyArray<ServedActor>;
  /** Readiness checks besides NATS and the actors, e.g. `{ postgres: … }`. Default none. */
  ready?: Record<string, ReadinessCheck>;
  /** Timers and loops started once everything runs; stopped after the servers. Default none. */
  background?: ReadonlyArray<{ name: string; start(): void; stop(): Promise<void> }>;
  /** Store connections closed after the actors drain (Redis, PostgreSQL, MongoDB). Default none. */
  close?: ReadonlyArray<Stoppable>;
}

/** Builds a service from its runtime; `service.ts` of every app exports one as `createService`. */
export type ServiceFactory<C extends CommonConfig> = (rt: Runtime<C>) => Service | Promise<Service>;

/**
 * The common start of a service, in order: config (fails fast), tracing, logger, metrics registry,
 * NATS. {@link runService} calls it; tests that assemble a service in-process may too.
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
  const nc = await connectNats({ ...natsOptionsOf(config), name: service, logger: log });
  const namespace = config.SLUICE_NAMESPACE ?? '';
  return {
    service,
    config,
    log,
    hashDeviceId,
    registry,
    nc,
    topology: topology(namespace, regionalDeploymentOf(config)),
    tracing,
  };
}

/**
 * Runs a built service: `prepare`, the ops server (`/healthz`, `/readyz`, `/metrics`), servers,
 * actors, background work; then waits for SIGTERM/SIGINT or an actor's failure and stops everything
 * in the order {@link Service} documents.
 */
export async function serve<C extends CommonConfig>(
  rt: Runtime<C>,
  svc: Service,
): Promise<OpsServer> {
  const actors = svc.actors ?? [];
  const servers = svc.servers ?? [];
  const background = svc.background ?? [];
  await svc.prepare?.();
  const ops = await startOpsServer({
    port: rt.config.OPS_PORT,
    host: rt.config.OPS_HOST,
    registry: rt.registry,
    live: () => actors.every((a) => a.state !== 'failed'),
    ready: {
      nats: () => !rt.nc.isClosed() && rt.nc.info !== undefined,
      ...Object.fromEntries(actors.map((a, i) => [`actor_${i}`, () => a.isReady()])),
      ...svc.ready,
    },
  });
  const started: Stoppable[] = [];
  try {
    for (const s of servers) {
      await s.start();
      started.push({ name: s.name, stop: () => s.stop() });
    }
    await Promise.all(actors.map((a) => a.start()));
  } catch (err) {
    for (const s of started.reverse()) await s.stop().catch(() => undefined);
    await ops.close();
    throw err;
  }
  for (const b of background) b.start();
  runUntilSignal({
    logger: rt.log,
    stoppables: [
      ...started,
      ...background.map((b) => ({ name: b.name, stop: () => b.stop() })),
      ...actors.map((a, i) => ({ name: `actor_${i}`, stop: () => a.stop() })),
      ...(svc.close ?? []),
      { name: 'ops', stop: () => ops.close() },
      { name: 'nats', stop: () => rt.nc.drain() },
      { name: 'tracing', stop: () => rt.tracing.shutdown() },
    ],
    failure: Promise.race(actors.map((a) => a.lifecycle.whenFailed())),
  });
  rt.log.info(
    Object.assign({ opsPort: ops.port }, ...servers.map((s) => s.describe?.() ?? {})),
    `${rt.service} running`,
  );
  return ops;
}

/**
 * The whole of every app's `main.ts`: start the runtime, build the service, serve it. A failure
 * before serving (bad config, NATS or a store unreachable at start) is logged and exits 1.
 */
export function runService<S extends z.ZodType<CommonConfig & Record<string, unknown>>>(
  service: string,
  schema: S,
  createService: ServiceFactory<z.infer<S>>,
): void {
  let log: Logger | undefined;
  // SIGHUP's default action ends the process: a service that reloads nothing logs and goes on, and
  // one that does (the exporter) is not killed by a SIGHUP that arrives while it starts.
  process.on('SIGHUP', () => {
    if (process.listenerCount('SIGHUP') === 1)
      log?.info('SIGHUP: this service has nothing to reload');
  });
  void (async () => {
    const rt = await startRuntime(service, schema);
    log = rt.log;
    await serve(rt, await createService(rt));
  })().catch((err: unknown) => {
    if (log) {
      log.fatal({ err }, `${service} failed to start`);
      log.flush?.();
    } else {
      console.error(err);
    }
    process.exit(1);
  });
}
