import { context, propagation, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  InMemorySpanExporter,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';

export interface TracingOptions {
  /** `service.name` resource attribute. */
  service: string;
  /** OTLP/HTTP base URL, e.g. `http://jaeger:4318`. Spans are created but not exported when unset. */
  otlpEndpoint?: string | undefined;
  /** Skip the SDK entirely (spans become no-ops). Default `false`. */
  disabled?: boolean;
}

export interface Tracing {
  shutdown(): Promise<void>;
}

/**
 * Starts OpenTelemetry once per process: W3C trace context propagation and async-context tracking
 * always (so trace ids reach logs and NATS headers), OTLP export when an endpoint is configured.
 * Call before anything else in `main.ts`.
 */
export function startTracing(opts: TracingOptions): Tracing {
  if (opts.disabled) return { shutdown: async () => undefined };
  const sdk = new NodeSDK({
    serviceName: opts.service,
    autoDetectResources: false,
    instrumentations: [],
    textMapPropagator: new W3CTraceContextPropagator(),
    contextManager: new AsyncLocalStorageContextManager(),
    ...(opts.otlpEndpoint
      ? { traceExporter: new OTLPTraceExporter({ url: `${opts.otlpEndpoint.replace(/\/$/, '')}/v1/traces` }) }
      : { spanProcessors: [] }),
  });
  sdk.start();
  return { shutdown: () => sdk.shutdown() };
}

/** In-process tracing that records finished spans, for tests. */
export interface MemoryTracing extends Tracing {
  exporter: InMemorySpanExporter;
}

/** Registers a global provider that keeps spans in memory; tests read them from `exporter`. */
export function startMemoryTracing(): MemoryTracing {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  trace.setGlobalTracerProvider(provider);
  return {
    exporter,
    shutdown: async () => {
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
