import { trace } from '@opentelemetry/api';
import { extractRequestTraceContext, injectRequestTraceHeaders } from './propagation';
import { startMemoryTracing, tracer, type MemoryTracing } from './tracing';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';
const TRACEPARENT = `00-${TRACE_ID}-${SPAN_ID}-01`;

describe('request trace context', () => {
  let tracing: MemoryTracing;
  beforeAll(() => {
    tracing = startMemoryTracing();
  });
  afterAll(() => tracing.shutdown());

  it('reads traceparent/tracestate from HTTP headers and from gRPC metadata values', () => {
    for (const headers of [
      { traceparent: TRACEPARENT, tracestate: 'a=1' },
      { traceparent: [TRACEPARENT], tracestate: ['a=1'] },
      { traceparent: [Buffer.from('x'), TRACEPARENT], tracestate: ['a=1'] },
    ]) {
      const sc = trace.getSpanContext(extractRequestTraceContext(headers));
      expect(sc).toMatchObject({ traceId: TRACE_ID, spanId: SPAN_ID, isRemote: true });
      expect(sc?.traceState?.get('a')).toBe('1');
    }
  });

  it('answers the root context for a missing or malformed traceparent, whatever is active', () => {
    tracer('spec').startActiveSpan('server-side', (span) => {
      for (const headers of [
        {},
        { traceparent: 'garbage' },
        { traceparent: [] },
        { traceparent: `00-${TRACE_ID}-${SPAN_ID}` },
      ]) {
        const ctx = extractRequestTraceContext(headers);
        expect(trace.getSpanContext(ctx)).toBeUndefined();
        // A span started in it begins a new trace.
        expect(tracer('spec').startSpan('x', {}, ctx).spanContext().traceId).not.toBe(
          span.spanContext().traceId,
        );
      }
      span.end();
    });
  });

  it('writes the active span as traceparent into outgoing headers', () => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    const ids = tracer('spec').startActiveSpan('client', (span) => {
      injectRequestTraceHeaders(headers);
      span.end();
      return span.spanContext();
    });
    expect(headers['traceparent']).toBe(`00-${ids.traceId}-${ids.spanId}-01`);
  });
});
