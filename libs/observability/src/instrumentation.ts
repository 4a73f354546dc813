import type { IncomingMessage, RequestOptions } from 'node:http';
import type { Server } from 'node:net';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import { GrpcInstrumentation } from '@opentelemetry/instrumentation-grpc';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { MongoDBInstrumentation } from '@opentelemetry/instrumentation-mongodb';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { isSelfTraced } from './self-traced';

/** The libraries the preload instruments, by the names `OTEL_NODE_DISABLED_INSTRUMENTATIONS` takes. */
export const INSTRUMENTED_LIBRARIES = ['http', 'grpc', 'pg', 'ioredis', 'mongodb'] as const;
export type InstrumentedLibrary = (typeof INSTRUMENTED_LIBRARIES)[number];

/** Paths of the ops server: probes and scrapes, never traced. */
export const OPS_PATHS: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * gRPC methods never traced by the gRPC instrumentation (it matches the method name only, on both
 * the client and the server side): the gateway's `Ingest` and `IngestBatch`, whose handlers open
 * their own SERVER span per batch, and the ops services (health checks, reflection).
 */
export const UNTRACED_GRPC_METHODS: readonly string[] = [
  'Ingest',
  'IngestBatch',
  'Check',
  'Watch',
  'ServerReflectionInfo',
];

export interface InstrumentationOptions {
  /** OTLP/HTTP base URL: requests to its host and port are never traced. Default unset. */
  otlpEndpoint?: string | undefined;
  /** Libraries left alone. Default none. */
  disabled?: readonly string[];
}

/**
 * Query parameters whose values never reach a span: the instrumentation's own defaults (signatures,
 * credentials) and device ids, which are sensitive.
 */
export const REDACTED_QUERY_PARAMS: readonly string[] = [
  'sig',
  'Signature',
  'AWSAccessKeyId',
  'X-Goog-Signature',
  'X-Amz-Signature',
  'X-Amz-Credential',
  'X-Amz-Security-Token',
  'device',
  'device_id',
  'deviceId',
];

/** A path with every `/devices/<id>` segment replaced by `/devices/{device}` (the route's template). */
export function redactDevicePath(path: string): string {
  return path.replace(/(\/devices\/)[^/?#]+/g, '$1{device}');
}

/** The request's path without the query. */
function pathOf(url: string | undefined): string {
  const q = (url ?? '/').indexOf('?');
  return q < 0 ? (url ?? '/') : (url ?? '/').slice(0, q);
}

function headerOf(headers: RequestOptions['headers'], name: string): unknown {
  if (!headers || Array.isArray(headers)) return undefined;
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v;
  return undefined;
}

/**
 * The instrumentations of the preload, configured to stay quiet:
 * - http: incoming requests except ops paths and servers marked by `markSelfTraced`; outgoing requests
 *   only inside a trace, and never those that already carry a `traceparent` (the caller traced
 *   them, e.g. a webhook POST) nor those to the OTLP endpoint. Device ids in a path
 *   ({@link redactDevicePath}) or a query ({@link REDACTED_QUERY_PARAMS}) are redacted.
 * - pg, ioredis, mongodb: only inside a trace (`requireParentSpan`); statements without values
 *   (pg: the SQL text with placeholders; ioredis: the command name; mongodb: the query shape).
 * - grpc: every method but {@link UNTRACED_GRPC_METHODS}.
 */
export function createInstrumentations(opts: InstrumentationOptions = {}): Instrumentation[] {
  const off = new Set(opts.disabled ?? []);
  const otlp = opts.otlpEndpoint ? new URL(opts.otlpEndpoint) : undefined;
  const otlpPort = otlp ? otlp.port || (otlp.protocol === 'https:' ? '443' : '80') : undefined;
  const list: Instrumentation[] = [];
  if (!off.has('http')) {
    list.push(
      new HttpInstrumentation({
        startIncomingSpanHook: (req: IncomingMessage) => {
          const path = pathOf(req.url);
          const redacted = redactDevicePath(path);
          return redacted === path ? {} : { 'url.path': redacted };
        },
        redactedQueryParamsServer: [...REDACTED_QUERY_PARAMS],
        redactedQueryParams: [...REDACTED_QUERY_PARAMS],
        ignoreIncomingRequestHook: (req: IncomingMessage) =>
          OPS_PATHS.has(pathOf(req.url)) ||
          isSelfTraced((req.socket as { server?: Server }).server),
        ignoreOutgoingRequestHook: (req: RequestOptions) =>
          headerOf(req.headers, 'traceparent') !== undefined ||
          (otlp !== undefined &&
            (req.hostname ?? req.host) === otlp.hostname &&
            String(req.port ?? (req.protocol === 'https:' ? 443 : 80)) === otlpPort),
        requireParentforOutgoingSpans: true,
      }),
    );
  }
  if (!off.has('grpc'))
    list.push(new GrpcInstrumentation({ ignoreGrpcMethods: [...UNTRACED_GRPC_METHODS] }));
  if (!off.has('pg'))
    list.push(
      new PgInstrumentation({
        requireParentSpan: true,
        enhancedDatabaseReporting: false,
        ignoreConnectSpans: true,
      }),
    );
  if (!off.has('ioredis'))
    list.push(
      new IORedisInstrumentation({
        requireParentSpan: true,
        dbStatementSerializer: (cmd) => cmd,
      }),
    );
  if (!off.has('mongodb'))
    list.push(
      new MongoDBInstrumentation({ requireParentSpan: true, enhancedDatabaseReporting: false }),
    );
  return list;
}
