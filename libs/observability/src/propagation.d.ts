import { type Context } from '@opentelemetry/api';
import type { MsgHdrs } from '@nats-io/nats-core';
/** Writes `traceparent`/`tracestate` of `ctx` (default: the active context) into NATS headers. */
export declare function injectTraceHeaders(headers: MsgHdrs, ctx?: Context): void;
/** Reads the publisher's trace context from NATS headers; the root context when there is none. */
export declare function extractTraceContext(headers: MsgHdrs | undefined, base?: Context): Context;
