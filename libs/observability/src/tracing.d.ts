import { type Tracer } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
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
export declare function startTracing(opts: TracingOptions): Tracing;
/** In-process tracing that records finished spans, for tests. */
export interface MemoryTracing extends Tracing {
    exporter: InMemorySpanExporter;
}
/** Registers a global provider that keeps spans in memory; tests read them from `exporter`. */
export declare function startMemoryTracing(): MemoryTracing;
/** The tracer a library or service uses; named after it. */
export declare function tracer(name: string): Tracer;
