"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.injectTraceHeaders = injectTraceHeaders;
exports.extractTraceContext = extractTraceContext;
const api_1 = require("@opentelemetry/api");
const setter = {
    set: (carrier, key, value) => carrier.set(key, value),
};
const getter = {
    keys: (carrier) => (carrier ? carrier.keys() : []),
    // MsgHdrs.get answers '' for an absent header; the propagator expects undefined.
    get: (carrier, key) => carrier?.get(key) || undefined,
};
/** Writes `traceparent`/`tracestate` of `ctx` (default: the active context) into NATS headers. */
function injectTraceHeaders(headers, ctx = api_1.context.active()) {
    api_1.propagation.inject(ctx, headers, setter);
}
/** Reads the publisher's trace context from NATS headers; the root context when there is none. */
function extractTraceContext(headers, base = api_1.context.active()) {
    return api_1.propagation.extract(base, headers, getter);
}
//# sourceMappingURL=propagation.js.map