import {
  context,
  propagation,
  ROOT_CONTEXT,
  type Context,
  type TextMapGetter,
  type TextMapSetter,
} from '@opentelemetry/api';
import type { MsgHdrs } from '@nats-io/nats-core';

const setter: TextMapSetter<MsgHdrs> = {
  set: (carrier, key, value) => carrier.set(key, value),
};

const getter: TextMapGetter<MsgHdrs | undefined> = {
  keys: (carrier) => (carrier ? carrier.keys() : []),
  // MsgHdrs.get answers '' for an absent header; the propagator expects undefined.
  get: (carrier, key) => carrier?.get(key) || undefined,
};

/** Writes `traceparent`/`tracestate` of `ctx` (default: the active context) into NATS headers. */
export function injectTraceHeaders(headers: MsgHdrs, ctx: Context = context.active()): void {
  propagation.inject(ctx, headers, setter);
}

/** Reads the publisher's trace context from NATS headers; the root context when there is none. */
export function extractTraceContext(
  headers: MsgHdrs | undefined,
  base: Context = context.active(),
): Context {
  return propagation.extract(base, headers, getter);
}

/**
 * Headers of an incoming request, keys in lower case: node's `IncomingHttpHeaders`, or the
 * `traceparent`/`tracestate` values of gRPC metadata (`metadata.get(key)`).
 */
export type RequestHeaders = Readonly<Record<string, string | readonly unknown[] | undefined>>;

const requestGetter: TextMapGetter<RequestHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => {
    const v = carrier[key];
    if (typeof v === 'string') return v;
    if (!Array.isArray(v)) return undefined;
    const strings = v.filter((x): x is string => typeof x === 'string');
    return strings.length > 0 ? strings : undefined;
  },
};

/**
 * The caller's W3C trace context (`traceparent`/`tracestate`) from request headers, over the root
 * context: a request never inherits the server's own context, and a missing or malformed
 * `traceparent` yields the root, so a span started in it begins a new trace (never an error).
 */
export function extractRequestTraceContext(headers: RequestHeaders): Context {
  return propagation.extract(ROOT_CONTEXT, headers, requestGetter);
}

/** Writes `traceparent`/`tracestate` of `ctx` (default: the active context) into outgoing HTTP headers. */
export function injectRequestTraceHeaders(
  headers: Record<string, string>,
  ctx: Context = context.active(),
): void {
  propagation.inject(ctx, headers);
}
