import { context, propagation, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import {
  defaultResource,
  envDetector,
  hostDetector,
  osDetector,
  processDetector,
  resourceFromAttributes,
} from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  InMemorySpanExporter,
  NoopSpanProcessor,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { randomUUID } from 'node:crypto';
// The release version, inlined by the bundler (only this field); the root manifest is no library.
// eslint-disable-next-line @nx/enforce-module-boundaries
import { version as rootVersion } from '../../../package.json';

/**
 * Most links a span keeps (the SDK's `spanLimits.linkCountLimit`; its default is 128). An actor's
 * `handle batch` span links every message of its batch, so the limit is raised to cover the batch
 * sizes in use; the actor links at most this many, the rest are counted in
 * `messaging.batch.message_count` only.
 */
export const SPAN_LINK_LIMIT = 2048;

/** Sluice's release, from the root package.json: the default `service.version`. */
export const SLUICE_VERSION: string = rootVersion;

const EXPORTING = Symbol.for('sluice.observability.exporting');
const exporting = globalThis as { [EXPORTING]?: boolean };

/**
 * Whether finished spans go anywhere: an OTLP exporter ({@link startTracing} with an endpoint) or
 * the in-memory test exporter. Work done only for the sake of spans (e.g. keeping span links in a
 * store) is skipped when they do not.
 */
export function spansExported(): boolean {
  return exporting[EXPORTING] === true;
}

export interface TracingOptions {
  /** `service.name` resource attribute. */
  service: string;
  /** `service.version`. Default {@link SLUICE_VERSION}; `OTEL_RESOURCE_ATTRIBUTES=service.version=…` overrides it. */
  version?: string;
  /** `service.instance.id`. Default a random UUID per process start. */
  instanceId?: string;
  /** `deployment.environment.name` (e.g. `SLUICE_ENV`). Default unset. */
  environment?: string | undefined;
  /**
   * OTLP/HTTP base URL, e.g. `http://jaeger:4318`; spans go to `<url>/v1/traces` as OTLP JSON. When
   * unset, spans are still created (trace ids reach logs and NATS headers) but not exported.
   */
  otlpEndpoint?: string | undefined;
  /**
   * `otlp` starts the SDK's OTLP metric exporter (endpoint and protocol from the standard
   * `OTEL_EXPORTER_OTLP_*` variables). Default `none`: metrics are Prometheus, on `/metrics`.
   */
  metricsExporter?: 'none' | 'otlp';
  /** `otlp` starts the SDK's OTLP log exporter. Default `none`: logs are pino lines on stdout. */
  logsExporter?: 'none' | 'otlp';
  /** Skip the SDK entirely (spans become no-ops, logs carry no trace ids). Default `false`. */
  disabled?: boolean;
}

export interface Tracing {
  /** Flushes and stops export, then unregisters the global provider, propagator and context manager. */
  shutdown(): Promise<void>;
}

/**
 * Starts OpenTelemetry once per process: W3C trace context propagation, async-context tracking and a
 * registered TracerProvider always (so trace ids reach logs and NATS headers), OTLP span export when
 * an endpoint is configured. The resource names the service (`service.name`, `service.version`,
 * `service.instance.id`), the host, the OS and the process; `OTEL_RESOURCE_ATTRIBUTES` is merged last
 * and overrides any of them. Call before anything else in `main.ts`.
 */
export function startTracing(opts: TracingOptions): Tracing {
  if (opts.disabled) return { shutdown: async () => undefined };
  const sdk = new NodeSDK({
    serviceName: opts.service,
    resource: defaultResource().merge(
      resourceFromAttributes({
        'service.version': opts.version ?? SLUICE_VERSION,
        'service.instance.id': opts.instanceId ?? randomUUID(),
        ...(opts.environment ? { 'deployment.environment.name': opts.environment } : {}),
      }),
    ),
    // Merged over `resource` in this order, so OTEL_RESOURCE_ATTRIBUTES wins; `serviceName` is
    // merged after them all.
    autoDetectResources: true,
    resourceDetectors: [hostDetector, osDetector, processDetector, envDetector],
    instrumentations: [],
    textMapPropagator: new W3CTraceContextPropagator(),
    contextManager: new AsyncLocalStorageContextManager(),
    spanLimits: { linkCountLimit: SPAN_LINK_LIMIT },
    // A trace exporter gets the SDK's batch processor (OTEL_BSP_* apply). NodeSDK registers no
    // TracerProvider at all for an empty processor list, so without an endpoint a processor that
    // drops finished spans keeps one registered.
    ...(opts.otlpEndpoint
      ? {
          traceExporter: new OTLPTraceExporter({
            url: `${opts.otlpEndpoint.replace(/\/$/, '')}/v1/traces`,
          }),
        }
      : { spanProcessors: [new NoopSpanProcessor()] }),
    // NodeSDK defaults both to OTLP when these options are absent; absent here means "from the env".
    ...(opts.metricsExporter === 'otlp' ? {} : { metricReaders: [] }),
    ...(opts.logsExporter === 'otlp' ? {} : { logRecordProcessors: [] }),
  });
  sdk.start();
  exporting[EXPORTING] = Boolean(opts.otlpEndpoint);
  return {
    shutdown: async () => {
      exporting[EXPORTING] = false;
      await sdk.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}

/** In-process tracing that records finished spans, for tests. */
export interface MemoryTracing extends Tracing {
  exporter: InMemorySpanExporter;
}

/** Registers a global provider that keeps spans in memory; tests read them from `exporter`. */
export function startMemoryTracing(): MemoryTracing {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
    spanLimits: { linkCountLimit: SPAN_LINK_LIMIT },
  });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  exporting[EXPORTING] = true;
  return {
    exporter,
    shutdown: async () => {
      exporting[EXPORTING] = false;
      await provider.shutdown();
      trace.disable();
      propagation.disable();
      context.disable();
    },
  };
}

/** The tracer a library or service uses; named after it. */
export function tracer(name: string): Tracer {
  return trace.getTracer(name);
}
