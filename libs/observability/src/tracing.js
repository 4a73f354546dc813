"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.startTracing = startTracing;
exports.startMemoryTracing = startMemoryTracing;
exports.tracer = tracer;
const api_1 = require("@opentelemetry/api");
const context_async_hooks_1 = require("@opentelemetry/context-async-hooks");
const core_1 = require("@opentelemetry/core");
const exporter_trace_otlp_http_1 = require("@opentelemetry/exporter-trace-otlp-http");
const sdk_node_1 = require("@opentelemetry/sdk-node");
const sdk_trace_1 = require("@opentelemetry/sdk-trace");
/**
 * Starts OpenTelemetry once per process: W3C trace context propagation and async-context tracking
 * always (so trace ids reach logs and NATS headers), OTLP export when an endpoint is configured.
 * Call before anything else in `main.ts`.
 */
function startTracing(opts) {
    if (opts.disabled)
        return { shutdown: async () => undefined };
    const sdk = new sdk_node_1.NodeSDK({
        serviceName: opts.service,
        autoDetectResources: false,
        instrumentations: [],
        textMapPropagator: new core_1.W3CTraceContextPropagator(),
        contextManager: new context_async_hooks_1.AsyncLocalStorageContextManager(),
        ...(opts.otlpEndpoint
            ? { traceExporter: new exporter_trace_otlp_http_1.OTLPTraceExporter({ url: `${opts.otlpEndpoint.replace(/\/$/, '')}/v1/traces` }) }
            : { spanProcessors: [] }),
    });
    sdk.start();
    return { shutdown: () => sdk.shutdown() };
}
/** Registers a global provider that keeps spans in memory; tests read them from `exporter`. */
function startMemoryTracing() {
    const exporter = new sdk_trace_1.InMemorySpanExporter();
    const provider = new sdk_trace_1.TracerProvider({ spanProcessors: [new sdk_trace_1.SimpleSpanProcessor({ exporter })] });
    const contextManager = new context_async_hooks_1.AsyncLocalStorageContextManager().enable();
    api_1.context.setGlobalContextManager(contextManager);
    api_1.propagation.setGlobalPropagator(new core_1.W3CTraceContextPropagator());
    api_1.trace.setGlobalTracerProvider(provider);
    return {
        exporter,
        shutdown: async () => {
            await provider.shutdown();
            api_1.trace.disable();
            api_1.propagation.disable();
            api_1.context.disable();
        },
    };
}
/** The tracer a library or service uses; named after it. */
function tracer(name) {
    return api_1.trace.getTracer(name);
}
//# sourceMappingURL=tracing.js.map